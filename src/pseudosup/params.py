"""params.yaml: loading, schema validation (with defaults) and per-stage slices.

params.yaml is the single source of truth for Snakemake and DVC. Each stage is told
which top-level or dotted keys it may read (`--keys`), and sees only those: the rule
that runs it declares the same keys, so a change to any value a stage reads reruns
that stage under both runners, and nothing else.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from .io import PseudosupError

SCHEMA_RELPATH = Path("workflow/schemas/params.schema.yaml")
SPLITS_RELPATH = Path("data/splits")  # committed split files, in the project that holds the schema


def schema_path_for(params_path: Path) -> Path:
    """The schema lives in the project that holds params.yaml (or its parents)."""
    for root in [params_path.resolve().parent, *params_path.resolve().parents]:
        if (root / SCHEMA_RELPATH).exists():
            return root / SCHEMA_RELPATH
    raise PseudosupError(
        f"cannot find {SCHEMA_RELPATH} next to {params_path} or in a parent directory; "
        "run pseudosup from the project root")


@lru_cache(maxsize=8)
def _load_schema(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text())


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
        check_unique_keys(yaml.compose(text, Loader=yaml.SafeLoader), path)
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise PseudosupError(f"{path}: params file not found") from None
    except yaml.YAMLError as e:
        raise PseudosupError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise PseudosupError(f"{path}: expected a mapping of keys at the top level")
    return data


def check_unique_keys(node, source: Path, where: tuple[str, ...] = ()) -> None:
    """YAML keeps the last of two equal keys without a word: a second `split:` in an
    experiment would silently win. Refuse it, naming the key and both lines."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
            line = key.start_mark.line + 1
            if name is not None and key.tag != "tag:yaml.org,2002:merge":
                if name in seen:
                    dotted = ".".join((*where, name))
                    raise PseudosupError(f"{source}:{line}: duplicate key '{dotted}' (first at line {seen[name]}); "
                                         "YAML would keep only the last value: keep one of them")
                seen[name] = line
            check_unique_keys(value, source, (*where, name or "?"))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            check_unique_keys(item, source, (*where, str(i)))


def _fill_defaults(node: Any, schema: dict, root: dict) -> None:
    """Insert schema defaults for missing keys, recursively (in place)."""
    schema = _deref(schema, root)
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub = _deref(sub, root)
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill_defaults(node[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)
    for branch in schema.get("allOf", []):
        cond = _deref(branch, root)
        if "if" in cond and _matches(node, cond["if"], root):
            _fill_defaults(node, cond.get("then", {}), root)


def _matches(node: Any, schema: dict, root: dict) -> bool:
    validator = jsonschema.Draft202012Validator({**schema, "$defs": root.get("$defs", {})})
    return validator.is_valid(node)


def _deref(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if ref and ref.startswith("#/$defs/"):
        return root["$defs"][ref.split("/")[-1]]
    return schema


def _format_error(err: jsonschema.ValidationError, source: Path) -> str:
    key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"{source}: invalid value at key '{key}': {err.message}"


def validate(params: dict, source: Path, schema_file: Path | None = None) -> dict:
    """Validate against the JSON schema and fill defaults; return a new dict.

    Raises PseudosupError naming the first offending key (all are listed).
    """
    schema_file = schema_file or schema_path_for(source)
    schema = _load_schema(str(schema_file))
    params = copy.deepcopy(params)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        best = [jsonschema.exceptions.best_match([e]) for e in errors]
        raise PseudosupError("\n".join(_format_error(e, source) for e in best))
    _fill_defaults(params, schema, schema)
    # not resolve(): with a symlinked workflow/ the splits are still the project's own
    check_references(params, source, schema_file.parents[2] / SPLITS_RELPATH)
    check_overrides(params, schema, source)
    return params


def check_overrides(params: dict, schema: dict, source: Path) -> None:
    """An experiment's `evaluation` (and `cross.finetune`) overrides obey the schema of
    `evaluation` (`finetune`)."""
    for section, where in (("evaluation", ("evaluation",)), ("finetune", ("cross", "finetune"))):
        if section not in schema["properties"]:
            continue
        sub = {**schema["properties"][section], "$defs": schema.get("$defs", {})}
        validator = jsonschema.Draft202012Validator(sub)
        for name, exp in params.get("experiments", {}).items():
            over = exp
            for w in where:
                over = (over or {}).get(w) or {}
            for err in validator.iter_errors({**params.get(section, {}), **over}):
                key = ".".join(str(p) for p in err.absolute_path)
                raise PseudosupError(f"{source}: invalid value at key "
                                     f"'experiments.{name}.{'.'.join(where)}.{key}': {err.message}")


def check_references(params: dict, source: Path, splits_dir: Path | None = None) -> None:
    """Cross-key checks a JSON schema cannot express: names must exist; an experiment's
    split must be committed or drawable, and of the experiment's dataset."""
    problems = []
    if splits_dir is not None:
        problems += _split_problems(params, splits_dir)
    for name, exp in params.get("experiments", {}).items():
        for feat in exp.get("features", []):
            if feat not in params.get("features", {}):
                problems.append(f"experiments.{name}.features: unknown feature '{feat}' "
                                f"(defined: {sorted(params.get('features', {}))})")
        for meth in exp.get("methods", []):
            if meth not in params.get("methods", {}):
                problems.append(f"experiments.{name}.methods: unknown method '{meth}' "
                                f"(defined: {sorted(params.get('methods', {}))})")
        gal = exp.get("gallery")
        if gal:
            for key, pool in (("feature", exp.get("features", [])), ("method", exp.get("methods", []))):
                if gal.get(key) not in pool:
                    problems.append(f"experiments.{name}.gallery.{key}: '{gal.get(key)}' is not "
                                    f"one of the experiment's {key}s {pool}")
            if gal.get("bits") not in exp.get("bits", []):
                problems.append(f"experiments.{name}.gallery.bits: {gal.get('bits')} is not one of "
                                f"the experiment's bits {exp.get('bits')}")
        problems += _published_problems(name, exp)
        problems += _cross_problems(name, exp, params.get("features", {}))
    for target in params.get("targets", []):
        if target not in params.get("experiments", {}):
            problems.append(f"targets: unknown experiment '{target}'")
    if problems:
        raise PseudosupError("\n".join(f"{source}: {p}" for p in problems))


def _published_problems(name: str, exp: dict) -> list[str]:
    """Published numbers must sit beside a run of this experiment: its method and bits."""
    out = []
    for i, pub in enumerate(exp.get("published", [])):
        where = f"experiments.{name}.published[{i}]"
        if pub.get("method") not in exp.get("methods", []):
            out.append(f"{where}.method: '{pub.get('method')}' is not one of the experiment's methods "
                       f"{exp.get('methods', [])}")
        extra = sorted(int(b) for b in pub.get("values", {}) if int(b) not in exp.get("bits", []))
        if extra:
            out.append(f"{where}.values: {extra} bits not among the experiment's bits {exp.get('bits')}; "
                       "leave those values out (say in `note` that the source has them)")
    return out


def _split_problems(params: dict, splits_dir: Path) -> list[str]:
    """Each experiment's split is a committed file, a params `splits:` entry or a named
    protocol (drawn by `pseudosup make-split`), and belongs to the experiment's dataset."""
    out = []
    defined = params.get("splits", {})
    for name, spec in defined.items():
        committed = _committed_dataset(splits_dir / f"{name}.json")
        if committed is not None and committed != spec["dataset"]:
            out.append(f"splits.{name}.dataset: '{spec['dataset']}', but the committed "
                       f"{SPLITS_RELPATH / name}.json is a split of '{committed}'")
    for name, exp in params.get("experiments", {}).items():
        split = exp.get("split")
        if not split:
            continue
        dataset = _split_dataset(split, defined, splits_dir)
        if dataset is None:
            out.append(f"experiments.{name}.split: split '{split}' is neither committed "
                       f"({SPLITS_RELPATH / split}.json) nor drawable (no params `splits.{split}`, no protocol "
                       f"of that name); make it with "
                       f"`pseudosup make-split --dataset {exp['dataset']} --protocol per-class --queries-per-class N "
                       f"--name {split}`, or define `splits.{split}` (docs/datasets.md, \"Your own images\")")
        elif dataset != exp["dataset"]:
            out.append(f"experiments.{name}.split: split '{split}' is a split of dataset '{dataset}', not of the "
                       f"experiment's dataset '{exp['dataset']}'")
    return out


def _split_dataset(split: str, defined: dict, splits_dir: Path) -> str | None:
    """The dataset of split `split` (committed file first), None when nothing makes it."""
    committed = _committed_dataset(splits_dir / f"{split}.json")
    if committed is not None:
        return committed
    if split in defined:
        return defined[split]["dataset"]
    from .data.splits import PROTOCOL_INFO as protocols
    from .data.splits import STANDIN_PREFIX as PREFIX

    if split.startswith(PREFIX) and split[len(PREFIX):] in protocols:  # a protocol drawn from a stand-in
        return PREFIX + protocols[split[len(PREFIX):]]["dataset"]
    return protocols.get(split, {}).get("dataset")


def _committed_dataset(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["dataset"])
    except (ValueError, KeyError, TypeError):
        raise PseudosupError(f"{path}: malformed split file (no 'dataset'); restore it (git checkout) "
                             "or redraw it with `pseudosup make-split`") from None


def _cross_problems(name: str, exp: dict, features: dict) -> list[str]:
    """A split is needed unless a cross-feature experiment scores an instance protocol;
    `cross` names a sift-bow and a square-resized cnn feature of the experiment."""
    cross = exp.get("cross")
    if not (cross and cross.get("protocol")) and not exp.get("split"):
        return [f"key 'experiments.{name}': 'split' is required (only a cross-feature experiment "
                f"with a `cross.protocol` may leave it out or null)"]
    out = []
    for key, extractor in (("sift", "sift-bow"), ("cnn", "cnn")) if cross else ():
        feat = cross.get(key)
        if feat not in exp.get("features", []):
            out.append(f"experiments.{name}.cross.{key}: '{feat}' is not one of the experiment's features "
                       f"{exp.get('features', [])}")
        elif features.get(feat, {}).get("extractor") != extractor:
            out.append(f"experiments.{name}.cross.{key}: feature '{feat}' must have extractor {extractor}")
        elif key == "cnn" and features[feat].get("resize", "square") != "square":
            out.append(f"experiments.{name}.cross.cnn: feature '{feat}' must have resize: square (fine-tuning)")
    return out


def load(path: str | Path) -> dict:
    path = Path(path)
    return validate(load_yaml(path), path)


def lookup(params: dict, dotted: str, source: str | Path = "params.yaml") -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise PseudosupError(f"{source}: missing key '{dotted}'")
        node = node[part]
    return node


class ParamSlice(dict):
    """The values of some dotted keys of params.yaml, as {key: value}.

    `str()` gives the keys (for a shell command line); `repr()` the values (what
    Snakemake stores to decide whether a params change reruns the job).
    """

    def __str__(self) -> str:
        return " ".join(self.keys())

    def __repr__(self) -> str:
        # canonical (sorted keys), so reordering a YAML mapping is not a "change"
        return json.dumps(self, sort_keys=True)

    def get_key(self, dotted: str) -> Any:
        """Read `dotted` (the key itself or a key below a declared one)."""
        for key in self:
            if dotted == key:
                return self[key]
            if dotted.startswith(key + "."):
                return lookup(self[key], dotted[len(key) + 1:])
        raise PseudosupError(
            f"stage read params key '{dotted}' but only declared {list(self)}; "
            "declare it in the rule's params (this keeps reruns exact)")


def slice_of(params: dict, keys: Iterable[str], source: str | Path = "params.yaml") -> ParamSlice:
    return ParamSlice((k, lookup(params, k, source)) for k in keys)


def load_slice(path: str | Path, keys: Iterable[str]) -> ParamSlice:
    return slice_of(load(path), keys, path)
