"""What the Snakefile needs from Python: file patterns, experiment expansions, params
slices and the code each stage runs. Kept here (not in the rules) so that it is
tested like any other code and the rules stay pure wiring."""

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
                ok, why = registry.get(self.dataset(e)).available(self.config.get("paths"))
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

    def backbone(self, dataset: str, feature: str) -> list[str]:
        """The pre-trained checkpoint a feature needs ([] for none)."""
        cfg = self.config["features"][feature]
        return [path("backbone", dataset=dataset, feature=feature)] if cfg["extractor"] == "small-cnn" else []

    def fitted(self, dataset: str, feature: str) -> list[str]:
        """The fitted extractor model a feature needs (vocabulary, whitening; [] for none)."""
        from .features.extractors import needs_fit

        cfg = self.config["features"][feature]
        return [path("fitted", dataset=dataset, feature=feature)] if needs_fit(cfg) else []

    def fit_split(self, feature: str) -> list[str]:
        """The split whose part a vocabulary / whitening is fitted on ([] = the whole dataset)."""
        cfg = self.config["features"][feature]
        s = cfg.get("vocabulary") if cfg["extractor"] == "sift-bow" else cfg.get("whitening")
        return [path("split", split=s["split"])] if s and s.get("split") else []

    def weights_file(self, feature: str) -> list[str]:
        """A local weights file of a CNN extractor (an input, so a new file reruns it)."""
        cfg = self.config["features"][feature]
        w = cfg.get("weights") if cfg["extractor"] == "cnn" else None
        return [w] if w and w not in ("torchvision", "random") else []

    def bow_features_regex(self) -> str:
        """Wildcard constraint matching exactly the sift-bow features (they have a rule of their own)."""
        import re

        names = sorted(f for f, c in self.config["features"].items() if c["extractor"] == "sift-bow")
        return "|".join(re.escape(n) for n in names) or "(?!x)x"

    def bow_file(self, experiment: str, feature: str) -> str:
        return path("features_bow", dataset=self.dataset(experiment), feature=feature)

    def sparse_of(self, experiment: str, feature: str) -> list[str]:
        """[the sparse bag of words] of a sift-bow feature, also scored by cosine ([] otherwise)."""
        cfg = self.config["features"][feature]
        return [self.bow_file(experiment, feature)] if cfg["extractor"] == "sift-bow" else []

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

    def all_run_files(self, names=None) -> list[str]:
        return [r for e in self.targets(names) for r in self.run_files(e)]

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

    def available(self) -> list[str]:
        """Every experiment of params whose dataset can be obtained here."""
        from .data import registry

        return [e for e, exp in self.config["experiments"].items()
                if registry.get(exp["dataset"]).available(self.config.get("paths"))[0]]

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

    # --- params --------------------------------------------------------------------------
    def params(self, *keys: str, **wildcards) -> ParamSlice:
        """The values of `keys` (formatted with the job's wildcards)."""
        resolved = [k.format(**wildcards) for k in keys]
        return ParamSlice((k, lookup(self.config, k)) for k in resolved)


# --- the code a stage runs (for rerun triggers in both runners) -----------------------------

def code_files(stage_module: str, root: Path | None = None) -> list[str]:
    """Source files (relative to `root`, default the project root) that the stage
    module `pseudosup.stages.<name>` imports, transitively, within the package."""
    root = root or PACKAGE_DIR.parent.parent
    files = sorted(_closure(f"pseudosup.stages.{stage_module}"))
    return [str(Path(f).resolve().relative_to(root.resolve())) for f in files]


@lru_cache(maxsize=None)
def _closure(module: str) -> frozenset[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        mod = todo.pop()
        for f in _module_files(mod):
            if f not in seen:
                seen.add(f)
                todo += _imports_of(f)
    return frozenset(seen)


def _module_files(module: str) -> list[str]:
    """The module's file plus the __init__.py of every package on its path."""
    parts = module.split(".")
    base = PACKAGE_DIR.parent
    files = []
    for i in range(1, len(parts) + 1):
        pkg_init = base.joinpath(*parts[:i], "__init__.py")
        if pkg_init.exists():
            files.append(str(pkg_init))
    mod_file = base.joinpath(*parts).with_suffix(".py")
    if mod_file.exists():
        files.append(str(mod_file))
    return files


def _imports_of(file: str) -> list[str]:
    rel = Path(file).resolve().relative_to(PACKAGE_DIR.parent.resolve()).with_suffix("")
    parts = list(rel.parts)
    package = ".".join(parts[:-1])  # for __init__ files this is the package itself
    out = []
    for node in ast.walk(ast.parse(Path(file).read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("pseudosup")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pseudosup"):
                out.append(target)
                out += [f"{target}.{a.name}" for a in node.names]  # submodules imported by name
    return out
