# Input functions shared by the rules (functions only: `snakemake --lint` asks that rules
# and functions live in separate files). Needs PLAN and config from common.smk.


def download_params(wildcards):
    """paths, plus the dataset's own options when params.yaml has any."""
    extra = [f"datasets.{wildcards.dataset}"] if wildcards.dataset in config["datasets"] else []
    return PLAN.params("paths", *extra, **dict(wildcards.items()))


# --- cross-feature experiments (cie.smk) ---------------------------------------------


def _cross(w):
    return PLAN.experiment(w.experiment)["cross"]


def _feature_file(w, which, suffix):
    return f"data/features/{PLAN.dataset(w.experiment)}/{_cross(w)[which]}{suffix}"


def _split_input(w):
    return [] if _cross(w)["protocol"] else [PLAN.split(w.experiment)]


def _task(w):
    """The stages' --dataset/--raw and protocol (instance ground truth or split)."""
    c = _cross(w)
    task = f"--dataset {PLAN.dataset(w.experiment)} --raw {PLAN.raw(w.experiment)} "
    return task + (f"--protocol {c['protocol']}" if c["protocol"] else f"--split {PLAN.split(w.experiment)}")


def _also(w):
    """Further instance protocols scored by evaluate-retrieval on the same indexes."""
    return " ".join(f"--also-protocol {p}" for p in _cross(w).get("also", []))


def _finetune_params(w):
    """finetune's params: the experiment's own finetune options and its CNN feature's."""
    return PLAN.params("finetune", f"experiments.{w.experiment}.cross.finetune", f"features.{_cross(w)['cnn']}", "seed")


# --- outputs shown by `snakemake --report` ---------------------------------------------
# Captions are workflow/report/<caption>.rst; Snakemake resolves a caption's path against
# the directory of the rule file that declares the output (workflow/rules), hence "../".
# Each experiment is a category of the report, with its figures and tables apart.


def figure(path, caption, label):
    """A figure of an experiment, shown in the report with its caption."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category="{experiment}",
        subcategory="Figures",
        labels={"figure": label},
    )


def table(path, caption, label, fmt):
    """A table of an experiment (Markdown or CSV), offered for download in the report."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category="{experiment}",
        subcategory="Tables",
        labels={"table": label, "format": fmt},
    )
