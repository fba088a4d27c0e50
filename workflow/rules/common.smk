# Shared setup: the params file, its validation, the experiment plan, helpers.
import os
import sys

from snakemake.exceptions import WorkflowError

from pseudosup import params as P
from pseudosup.io import PseudosupError
from pseudosup.workflow import PATTERNS, WILDCARD_CONSTRAINTS, Plan

# Stages read the params file itself (so DVC, which runs the same commands, sees the
# same values); Snakemake's config must therefore be exactly one whole file.
_cli_files = [str(f) for f in (workflow.overwrite_configfiles or [])]
if len(_cli_files) > 1:
    raise WorkflowError("pass one complete params file with --configfile, not several")
# relative when inside the project, so commands (and dvc.yaml) do not depend on where
# the project is checked out
PARAMS_FILE = os.path.relpath(_cli_files[-1]) if _cli_files else "params.yaml"
try:
    _raw = P.load_yaml(PARAMS_FILE)
    if workflow.config_settings.overwrite_config not in ({}, None, _raw):
        raise PseudosupError(
            "--config overrides are not supported: stages read the params file "
            "itself; edit it or pass another complete file with --configfile"
        )
    config.clear()
    config.update(P.validate(_raw, Path(PARAMS_FILE)))
except PseudosupError as e:
    raise WorkflowError(f"invalid params:\n{e}")

PLAN = Plan(config)
THREADS = config["threads"]
for _exp, _why in PLAN.skipped().items():
    print(f"pseudosup: skipping experiment '{_exp}': {_why}", file=sys.stderr)


def everything_inputs(wildcards):
    """What `everything` builds; names each experiment it leaves out, and what builds it
    (an input function, so the messages appear only when `everything` is asked for)."""
    for exp, why in PLAN.not_here().items():
        print(f"pseudosup: everything skips '{exp}': {why}", file=sys.stderr)
    return PLAN.deliverables(PLAN.available())


wildcard_constraints:
    **WILDCARD_CONSTRAINTS,


def params_of(*keys):
    """A rule's params: the declared keys (passed to the stage as --keys) and their
    values (what Snakemake compares to decide on a rerun)."""
    return lambda wildcards: PLAN.params(*keys, **dict(wildcards.items()))


def code(stage):
    """Source files a job of `stage` runs (the stage's own code plus the dataset,
    extractor and hasher plugins its wildcards select): a change to them reruns it."""
    return lambda wildcards: PLAN.code(stage, **dict(wildcards.items()))
