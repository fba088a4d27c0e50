# pseudosup: pseudo-supervised learning for image search, as one pipeline.
#
#   snakemake --cores 2                 # build the default targets (params.yaml `targets`)
#   snakemake --cores 2 demo            # one experiment: every experiment has a rule of its name
#   snakemake --cores 2 everything      # every experiment whose data is available here
#   snakemake --cores 2 features        # one phase: download, features, mining, train, evaluate, plot
#   snakemake --cores 2 --configfile tests/config/tiny.yaml   # another complete params file
#
# Every rule runs one `pseudosup <stage>` command; all logic lives in src/pseudosup.
# dvc.yaml is generated from this DAG by `pseudosup dvc-yaml` (never edit it by hand).


configfile: "params.yaml"


# front page of `snakemake --report report.html` (figures and tables: workflow/report/*.rst)
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/helpers.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/mining.smk"
include: "workflow/rules/cie.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/plot.smk"


rule all:
    default_target: True
    input:
        PLAN.deliverables(),


rule everything:
    # every experiment in params.yaml whose data is here (the heavier ones too); the
    # others are named with the command that builds them (params `download`)
    input:
        everything_inputs,


# One target per experiment, named as in params.yaml: `snakemake --cores 2 <experiment>`.
# A name that is also a rule's (e.g. `features`) would make the target ambiguous.
_clash = sorted(set(config["experiments"]) & {r.name for r in workflow.rules})
if _clash:
    raise WorkflowError(f"experiment name(s) {_clash} are also rule names; rename them in the params file")
for _exp in config["experiments"]:

    rule:
        name:
            _exp
        input:
            PLAN.deliverables([_exp]),


onstart:
    # SLURM runs: the pre-flight checks of `pseudosup slurm-check` on this run's settings
    # and jobs; stops before anything is submitted if the cluster cannot run them
    # (a no-op for local runs).
    from pseudosup.workflow import slurm_preflight

    slurm_preflight(workflow)
