"""What the Snakefile needs from Python: file patterns, experiment expansions, params
slices, the code each stage runs and the SLURM pre-flight of its `onstart:` hook. Kept
here (not in the rules) so that it is tested like any other code and the rules stay pure
wiring."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from . import PACKAGE_DIR
from .params import ParamSlice, lookup

PATTERNS = {
    "raw": "data/raw/{dataset}",
    "split": "data/splits/{split}.json",
    "backbone": "models/{dataset}/{feature}/backbone.pt",
    "features": "data/features/{dataset}/{feature}.npy",
    "features_meta": "data/features/{dataset}/{feature}.json",
    "features_bow": "data/features/{dataset}/{feature}.bow.npz",
    "fitted": "models/{dataset}/{feature}/fitted.npz",
    "pairs": "data/pairs/{experiment}/{feature}.npz",
    "mining_stats": "results/mining/{experiment}/{feature}.json",
    "model": "models/{experiment}/{feature}/{method}-{bits}.npz",
    "run": "results/runs/{experiment}/{feature}/{method}-{bits}.json",
    "ceiling": "results/runs/{experiment}/{feature}/euclidean.json",
    "metrics": "results/metrics/{experiment}.json",
    "table": "results/tables/{experiment}.md",
    "summary": "results/summary/{experiment}",
    "plot_data": "results/plots/{experiment}",
    "map_vs_bits": "results/figures/{experiment}/map_vs_bits.png",
    "pr_curves": "results/figures/{experiment}/pr_curves.png",
    "gallery": "results/figures/{experiment}/gallery.png",
    "feature_map": "results/figures/{experiment}/feature_map.png",
    # cross-feature experiments (issue 6, docs/cie.md)
    "cross_run": "results/runs/{experiment}/retrieval.json",
    "cross_table": "results/tables/{experiment}-retrieval.md",
    "cie_map": "results/figures/{experiment}/cie_map.png",
    "finetune_plot": "results/figures/{experiment}/finetune.png",
    "cie_gallery": "results/figures/{experiment}/cie_gallery.png",
}

WILDCARD_CONSTRAINTS = {
    "bits": r"\d+",
    "method": r"[A-Za-z0-9_]+(-[A-Za-z][A-Za-z0-9_]*)*",
    "experiment": r"[A-Za-z0-9_\-]+",
    "feature": r"[A-Za-z0-9_\-]+",
    "dataset": r"[A-Za-z0-9_\-]+",
}


def path(kind: str, **wildcards) -> str:
    return PATTERNS[kind].format(**wildcards)


class Plan:
    """Expands the experiments of a validated config into the files they need."""

    def __init__(self, config: dict):
        self.config = config

    def experiment(self, name: str) -> dict:
        return self.config["experiments"][name]

    def targets(self, names=None) -> list[str]:
        """The experiments to build: `names`, else params `targets` minus those whose
        dataset cannot be obtained here (see `skipped`)."""
        if names is not None:
            return list(names)
        return [e for e in self.config["targets"] if e not in self.skipped()]

    def skipped(self) -> dict[str, str]:
        """Targets whose dataset is unavailable (e.g. ../shared/data absent), with why.
        They are left out with a message, never faked."""
        if not hasattr(self, "_skipped"):
            from .data import registry

            self._skipped = {}
            for e in self.config["targets"]:
                ok, why = registry.availability(self.dataset(e), self.config.get("paths"), self._options(e))
                if not ok:
                    self._skipped[e] = why
        return self._skipped

    def dataset(self, experiment: str) -> str:
        return self.experiment(experiment)["dataset"]

    def raw(self, experiment: str) -> str:
        return path("raw", dataset=self.dataset(experiment))

    def split(self, experiment: str) -> str:
        return path("split", split=self.experiment(experiment)["split"])

    def features(self, experiment: str, feature: str) -> str:
        return path("features", dataset=self.dataset(experiment), feature=feature)

    def features_meta(self, experiment: str, feature: str) -> str:
        """The sidecar (.json) of a feature file: downstream stages read it too."""
        return path("features_meta", dataset=self.dataset(experiment), feature=feature)

    def extractor(self, feature: str):
        """The extractor registry entry of a feature (what it needs and writes)."""
        from .features.extractors import entry

        return entry(self.config["features"][feature]["extractor"])

    def backbone(self, dataset: str, feature: str) -> list[str]:
        """The pre-trained checkpoint a feature needs ([] for none)."""
        return [path("backbone", dataset=dataset, feature=feature)] if self.extractor(feature).backbone else []

    def fitted(self, dataset: str, feature: str) -> list[str]:
        """The fitted extractor model a feature needs (vocabulary, whitening; [] for none)."""
        from .features.extractors import needs_fit

        cfg = self.config["features"][feature]
        return [path("fitted", dataset=dataset, feature=feature)] if needs_fit(cfg) else []

    def fit_split(self, feature: str) -> list[str]:
        """The split whose part a vocabulary / whitening is fitted on ([] = the whole dataset)."""
        from .features.extractors import fit_params

        s = fit_params(self.config["features"][feature])
        return [path("split", split=s["split"])] if s and s.get("split") else []

    def weights_file(self, feature: str) -> list[str]:
        """A local weights file of a CNN extractor (an input, so a new file reruns it)."""
        cfg = self.config["features"][feature]
        w = cfg.get("weights") if self.extractor(feature).weights else None
        return [w] if w and w not in ("torchvision", "random") else []

    def bow_features_regex(self) -> str:
        """Wildcard constraint matching exactly the features that write a bag of words
        (they have a rule of their own)."""
        import re

        names = sorted(f for f in self.config["features"] if self.extractor(f).bow)
        return "|".join(re.escape(n) for n in names) or "(?!x)x"

    def bow_file(self, experiment: str, feature: str) -> str:
        return path("features_bow", dataset=self.dataset(experiment), feature=feature)

    def sparse_of(self, experiment: str, feature: str) -> list[str]:
        """[the sparse bag of words] of a feature that writes one, also scored by cosine ([] otherwise)."""
        return [self.bow_file(experiment, feature)] if self.extractor(feature).bow else []

    def pretrain_split(self, feature: str) -> str:
        return path("split", split=self.config["features"][feature]["pretrain"]["split"])

    # --- per-phase file lists (the named targets) --------------------------------------
    def raw_dirs(self, names=None) -> list[str]:
        return sorted({self.raw(e) for e in self.targets(names)})

    def feature_files(self, names=None) -> list[str]:
        return sorted({self.features(e, f) for e in self.targets(names) for f in self.experiment(e)["features"]})

    def pair_files(self, names=None) -> list[str]:
        return [path("pairs", experiment=e, feature=f) for e in self.targets(names)
                if self.experiment(e)["mining"] for f in self.experiment(e)["features"]]

    def mining_stats(self, experiment: str) -> list[str]:
        exp = self.experiment(experiment)
        return [path("mining_stats", experiment=experiment, feature=f) for f in exp["features"]] if exp["mining"] else []

    def model_files(self, names=None) -> list[str]:
        return [path("model", experiment=e, feature=f, method=m, bits=b) for e in self.targets(names)
                for f, m, b in self._grid(e)]

    def run_files(self, experiment: str) -> list[str]:
        exp = self.experiment(experiment)
        runs = [path("run", experiment=experiment, feature=f, method=m, bits=b) for f, m, b in self._grid(experiment)]
        if exp["ceiling"]:
            runs += [path("ceiling", experiment=experiment, feature=f) for f in exp["features"]]
        return runs

    def report_files(self, names=None) -> list[str]:
        """Metrics and table of the hashing / feature experiments (the `report` rule)."""
        return [p for e in self.targets(names) if not self.is_cross(e)
                for p in (path("metrics", experiment=e), path("table", experiment=e))]

    # --- cross-feature experiments (an experiment with `cross`: docs/cie.md) ------------
    def is_cross(self, experiment: str) -> bool:
        return bool(self.experiment(experiment).get("cross"))

    def experiment_regex(self) -> str:
        """Wildcard constraint matching exactly the experiments of params (so that a file
        such as results/tables/<experiment>-retrieval.md is never read as another experiment's)."""
        import re

        return "|".join(re.escape(n) for n in sorted(self.config["experiments"], key=len, reverse=True)) or "(?!x)x"

    def cross_regex(self) -> str:
        """Wildcard constraint matching exactly the cross-feature experiments."""
        import re

        names = sorted(e for e in self.config["experiments"] if self.is_cross(e))
        return "|".join(re.escape(n) for n in names) or "(?!x)x"

    def cross_files(self, names=None) -> list[str]:
        """What a cross-feature experiment delivers: its run, table, gated metrics, figures."""
        kinds = ("cross_run", "cross_table", "metrics", "cie_map", "finetune_plot", "cie_gallery")
        return [path(k, experiment=e) for e in self.targets(names) if self.is_cross(e) for k in kinds]

    def figure_files(self, names=None) -> list[str]:
        out = []
        for e in self.targets(names):
            if self.is_cross(e):  # their figures come with cross_files
                continue
            if self.experiment(e)["methods"]:
                out += [path("map_vs_bits", experiment=e), path("pr_curves", experiment=e)]
            else:  # feature-only experiments: one bar per feature
                out.append(path("feature_map", experiment=e))
            if self.experiment(e).get("gallery"):
                out.append(path("gallery", experiment=e))
        return out

    def deliverables(self, names=None) -> list[str]:
        """Everything an experiment delivers (metrics, tables, figures, mined pairs): the
        inputs of `all` (targets), `everything` and of each experiment's own rule."""
        return [*self.report_files(names), *self.figure_files(names), *self.pair_files(names),
                *self.cross_files(names)]

    # --- splits drawn by the pipeline (named protocols drawn from the data) -----------------
    def drawn_splits(self) -> dict[str, tuple[str, str]]:
        """Splits of the experiments that the `draw_split` rule makes, {split: (protocol,
        dataset)}: a named protocol drawn from the data, or `standin-<protocol>` on a stand-in,
        whose file is absent. A committed file never matches: it is an input, never redrawn.
        Computed once per Plan (the rules ask for it per job), like the DAG it shapes."""
        from .data.splits import PROTOCOL_INFO
        from .data.splits import STANDIN_PREFIX as PREFIX

        if hasattr(self, "_drawn_splits"):
            return self._drawn_splits
        out = {}
        for exp in self.config["experiments"].values():
            split = exp.get("split")
            if not split or Path(path("split", split=split)).is_file():
                continue
            protocol = split[len(PREFIX):] if exp["dataset"].startswith(PREFIX) else split
            if protocol in PROTOCOL_INFO and split not in self.config.get("splits", {}):
                out[split] = (protocol, exp["dataset"])
        self._drawn_splits = out
        return out

    def drawn_split_regex(self) -> str:
        import re

        return "|".join(re.escape(n) for n in sorted(self.drawn_splits(), key=len, reverse=True)) or "(?!x)x"

    def available(self) -> list[str]:
        """Every experiment of params whose data is here: what `everything` builds."""
        return [e for e in self.config["experiments"] if e not in self.not_here()]

    def not_here(self) -> dict[str, str]:
        """Experiments `everything` leaves out, with why and what to do: the dataset cannot
        be obtained here; or it would have to be downloaded (GBs for the paper's datasets)
        and params `download` is false (then `snakemake <experiment>` downloads it); or
        its split is a protocol drawn from the data that is not committed yet."""
        if not hasattr(self, "_not_here"):
            self._not_here = {e: why for e in self.config["experiments"] if (why := self._why_not_here(e))}
        return self._not_here

    def _options(self, experiment: str) -> dict:
        """params `datasets.<dataset>` of the experiment's dataset (e.g. NUS-WIDE's images)."""
        return (self.config.get("datasets") or {}).get(self.dataset(experiment)) or {}

    def _why_not_here(self, experiment: str) -> str | None:
        from .data import registry

        name, paths = self.dataset(experiment), self.config.get("paths")
        ok, why = registry.availability(name, paths, self._options(experiment))
        if not ok:
            return why
        missing = registry.to_download(name, paths)
        if missing and not self.config.get("download"):
            return (f"dataset '{name}' is not here ({', '.join(missing)} to download); "
                    f"`snakemake --cores N {experiment}` downloads it, or set `download: true` in the params "
                    f"file for `everything` to download every such dataset, or put the files in paths.mirror")
        split = self.experiment(experiment).get("split")
        if split and not Path(path("split", split=split)).is_file() and split not in self.drawn_splits():
            return (f"split '{split}' is not drawn yet: `pseudosup make-split --name {split}` (params "
                    f"splits.{split}), then commit data/splits/{split}.json and SHA256SUMS")
        return None

    def gallery_model(self, experiment: str) -> str:
        g = self.experiment(experiment)["gallery"]
        return path("model", experiment=experiment, feature=g["feature"], method=g["method"], bits=g["bits"])

    def gallery_features(self, experiment: str) -> str:
        return self.features(experiment, self.experiment(experiment)["gallery"]["feature"])

    def gallery_features_meta(self, experiment: str) -> str:
        return self.features_meta(experiment, self.experiment(experiment)["gallery"]["feature"])

    def _grid(self, experiment: str):
        exp = self.experiment(experiment)
        return [(f, m, b) for f in exp["features"] for m in exp["methods"] for b in exp["bits"]]

    # --- the code a job runs ---------------------------------------------------------------
    def code(self, stage: str, **wildcards) -> list[str]:
        """Source files job `stage` (with these wildcards) runs: the stage module's
        closure plus the registry plugins the job uses (see PLUGIN_ACCESS)."""
        roots = {(f"pseudosup.stages.{stage}", ALL)}
        opened: set = set()
        resolved: set = set()
        while True:
            files, kinds = _reach(frozenset(roots), frozenset(opened))
            todo = kinds - resolved
            if not todo:
                return _relative(files)
            for kind in todo:
                plugins = self.plugins(stage, kind, wildcards)
                if plugins:
                    roots |= plugins
                    opened |= {ref for ref, k in PLUGIN_ACCESS.items() if k == kind}
            resolved |= todo

    def plugins(self, stage: str, kind: str, wildcards: dict) -> set:
        """Refs to the plugins of `kind` that job `stage` uses (all of them when its
        wildcards do not say which; none when the job does not use the kind)."""
        from .data import registry as datasets
        from .features import extractors
        from .methods import registry as hashers

        method = self.config["methods"][wildcards["method"]] if "method" in wildcards else None
        if kind == "dataset-for-training":
            # the train stage reads its dataset only for hashers that need labels or images;
            # opening this cut point leads on to the data registry (the kind "dataset")
            if method and not hashers.entry(method["hasher"]).reads_dataset:
                return set()
            return {("pseudosup.stages.train", "dataset_of")}
        if kind == "dataset":
            name = wildcards.get("dataset") or (self.dataset(wildcards["experiment"])
                                                if "experiment" in wildcards else None)
            names = datasets.uses(name) if name else datasets.names()
            return {(m, ALL) for m in map(datasets.module_of, names) if m}
        if kind == "hasher":
            if method is None and stage == "evaluate":
                return set()  # the Euclidean ceiling: no model
            names = [method["hasher"], hashers.reference_of(method)] if method else hashers.names()
            return {(hashers.entry(n).module, ALL) for n in names if n}
        if kind == "extractor":
            feature = wildcards.get("feature")
            names = [self.config["features"][feature]["extractor"]] if feature else extractors.names()
            return {tuple(t.split(":")) for n in names for t in extractors.entry(n).targets}
        raise ValueError(f"unknown plugin kind {kind!r}")

    # --- params --------------------------------------------------------------------------
    def params(self, *keys: str, **wildcards) -> ParamSlice:
        """The values of `keys` (formatted with the job's wildcards)."""
        resolved = [k.format(**wildcards) for k in keys]
        return ParamSlice((k, lookup(self.config, k)) for k in resolved)


# --- the SLURM pre-flight of a run (the Snakefile's onstart hook) --------------------------

def slurm_preflight(workflow) -> None:
    """For the Snakefile's `onstart:` hook: when the run uses the SLURM executor, run
    `pseudosup slurm-check` on the settings and jobs of this very run (in this Python
    environment: it checks that the executor plugins are installed here) and stop the run,
    before anything is submitted, if a check fails. Does nothing for other executors."""
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or plugin.name != "slurm":
        return
    import json
    import subprocess
    import sys

    from snakemake.exceptions import WorkflowError

    es = workflow.executor_settings
    jobs = list(workflow.dag.needrun_jobs())
    # init_seconds as is: None (unset) makes slurm-check use its default, the plugin's; the
    # plugin rejects values < 1, so None is the only falsy value that gets here
    settings = {"status_command": es.status_command,
                "init_seconds": es.init_seconds_before_status_checks,
                "partitions": sorted({str(j.resources.get("slurm_partition") or "") for j in jobs} or {""}),
                "accounts": sorted({str(a) for j in jobs if (a := j.resources.get("slurm_account"))})}
    proc = subprocess.run([sys.executable, "-m", "pseudosup.cli", "slurm-check", "--settings", json.dumps(settings)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        err = proc.stderr  # the command's log lines, then its error message (or a traceback)
        start = err.find("pseudosup slurm-check: error: ")
        raise WorkflowError(err[start:].strip() if start >= 0 else
                            f"SLURM pre-flight (pseudosup slurm-check) failed (exit code {proc.returncode}):\n"
                            + err.strip()[-3000:])


# --- the code a job runs (rerun triggers in both runners) ----------------------------------
#
# A job's code is what its stage can execute: the stage module and, definition by
# definition, everything it reaches through import statements (a function's own imports
# count only when something reaches that function), plus the plugins the job selects
# through a registry, read off its wildcards. Registries import plugins by module path
# (importlib), which no import statement shows: reaching a registry's `get` (or the
# extractor registry's `extract` / `fit` / `save_bow`) is recorded as the use of a plugin *kind*, and
# `Plan.code` adds the registry and the job's plugin of that kind (all of them when the
# job's wildcards do not say which). Classes and decorated functions count whole (their
# methods may run from anywhere; decorators register them). Not counted:
# - files holding only a docstring (most __init__.py): importing them runs no code, so
#   no edit to them can change what a job writes;
# - NEUTRAL modules: they only record how a file was made (log lines, the machine record,
#   the package version and source digest) and import nothing else from the package
#   (tests/test_code_closure.py checks this); an edit to them changes no computed value,
#   and making them rerun triggers would rerun every job for a log-format change.
# Other dynamic imports (importlib with a fixed name) are not followed; there are none
# in the package today. tests/test_code_closure.py runs a tiny pipeline under a profiler
# and checks that every package file a job executes is among its code inputs (cli.py
# aside: it builds the command line; a job's command imports only its own stage).

NEUTRAL = ("pseudosup", "pseudosup.log", "pseudosup.machine")
PLUGIN_ACCESS = {  # (module, function) -> the plugin kind it loads by name
    ("pseudosup.data.registry", "get"): "dataset",
    ("pseudosup.methods.registry", "get"): "hasher",
    ("pseudosup.features.extractors", "extract"): "extractor",
    ("pseudosup.features.extractors", "fit"): "extractor",
    ("pseudosup.features.extractors", "save_bow"): "extractor",
    # the train stage reads the dataset only for hashers that need labels or images
    ("pseudosup.stages.train", "dataset_of"): "dataset-for-training",
}
ALL = "*"   # a Ref's name: every definition of the module
TOP = ""    # a Ref's name: the module's import-time code

Ref = tuple  # (module, name)


def code_files(stage_module: str, root: Path | None = None) -> list[str]:
    """Source files of the stage module `pseudosup.stages.<name>` alone (no plugins;
    see `Plan.code` for a job's code), relative to `root` (default the project root)."""
    files, _ = _reach(frozenset({(f"pseudosup.stages.{stage_module}", ALL)}), frozenset())
    return _relative(files, root)


def _relative(files, root: Path | None = None) -> list[str]:
    root = (root or PACKAGE_DIR.parent.parent).resolve()
    return sorted(str(Path(f).resolve().relative_to(root)) for f in files)


@lru_cache(maxsize=None)
def _reach(roots: frozenset, opened: frozenset) -> tuple[frozenset[str], frozenset[str]]:
    """(files, plugin kinds) reached from `roots`; plugin access points in `opened` are
    followed, the others recorded as their kind."""
    seen: set = set()
    files: set[str] = set()
    kinds: set[str] = set()
    todo = list(roots)
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        module, name = ref
        if ref in PLUGIN_ACCESS and ref not in opened:
            kinds.add(PLUGIN_ACCESS[ref])
            continue
        info = _module(module)
        if info is None:
            continue
        if info.counts:
            files.add(info.file)
        todo += [(p, TOP) for p in _parents(module)]
        if name != TOP:
            todo.append((module, TOP))
        if name == ALL:  # through each definition, so that access points stay cut
            todo += [(module, d) for d in info.defs]
        elif name in info.defs:
            todo += info.defs[name]
        elif name in info.aliases:  # a name the module imported (re-exported)
            todo += _alias_refs(info.aliases[name])
        todo += info.top if name == TOP else ()
    return frozenset(files), frozenset(kinds)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class _Module:
    """One package module: its file, the refs of its import-time code, of each
    top-level function, and its module-level import aliases."""

    def __init__(self, name: str, file: Path):
        self.name, self.file = name, str(file)
        tree = ast.parse(file.read_text())
        self.package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        body = tree.body
        docstring_only = all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)
        self.counts = not docstring_only and name not in NEUTRAL
        plain = [n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.decorator_list]
        self.def_names = {n.name for n in plain} | {n.name for n in body if isinstance(n, (ast.ClassDef,
                                                   ast.FunctionDef, ast.AsyncFunctionDef))}
        top_nodes = [n for n in body if n not in plain]
        self.aliases = self._aliases(top_nodes)
        self.top = self._refs(top_nodes, self.aliases)
        self.defs = {n.name: self._refs([n], {**self.aliases, **self._aliases([n])}) + [(name, TOP)] for n in plain}

    def _aliases(self, nodes) -> dict:
        out = {}
        for node in (n for top in nodes for n in ast.walk(top)):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("pseudosup"):
                        out[a.asname or a.name.split(".")[0]] = ("mod", a.name if a.asname else a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                target = self._target(node)
                if target.startswith("pseudosup"):
                    for a in node.names:
                        sub = f"{target}.{a.name}"
                        out[a.asname or a.name] = ("mod", sub) if _module_file(sub) else ("attr", target, a.name)
        return out

    def _target(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def _refs(self, nodes, aliases: dict) -> list[Ref]:
        refs: list[Ref] = []
        attribute_bases = set()
        for node in (n for top in nodes for n in ast.walk(top)):
            if isinstance(node, ast.Import):
                refs += [(a.name, ALL) for a in node.names if a.name.startswith("pseudosup")]
            elif isinstance(node, ast.ImportFrom):
                target = self._target(node)
                if target.startswith("pseudosup"):
                    refs.append((target, TOP))
                    refs += [(f"{target}.{a.name}", TOP) for a in node.names if _module_file(f"{target}.{a.name}")]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                alias = aliases.get(node.value.id)
                if alias and alias[0] == "mod":
                    refs.append((alias[1], node.attr))
                    attribute_bases.add(id(node.value))
        for node in (n for top in nodes for n in ast.walk(top)):
            # only names read: a class's annotated field `fit: str` is not a use of def fit
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and id(node) not in attribute_bases:
                if node.id in aliases:
                    refs += _alias_refs(aliases[node.id])
                elif node.id in self.def_names:
                    refs.append((self.name, node.id))
        return refs


def _alias_refs(alias) -> list[Ref]:
    return [(alias[1], ALL)] if alias[0] == "mod" else [(alias[1], alias[2])]


def _module_file(module: str) -> Path | None:
    base = PACKAGE_DIR.parent.joinpath(*module.split("."))
    for f in (base / "__init__.py", base.with_suffix(".py")):
        if f.is_file():
            return f
    return None


@lru_cache(maxsize=None)
def _module(module: str) -> _Module | None:
    if not module.startswith("pseudosup"):
        return None
    f = _module_file(module)
    return _Module(module, f) if f else None
