# pseudosup: pseudo-supervised learning for image search, as one pipeline.
#
#   snakemake --cores 2                 # build the default targets (params.yaml `targets`)
#   snakemake --cores 2 features        # one phase: download, features, mining, train, evaluate, plot
#   snakemake --cores 2 --configfile tests/config/tiny.yaml   # another complete params file
#
# Every rule runs one `pseudosup <stage>` command; all logic lives in src/pseudosup.
# dvc.yaml is generated from this DAG by `pseudosup dvc-yaml` (never edit it by hand).

configfile: "params.yaml"


include: "workflow/rules/common.smk"
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
        PLAN.report_files(),
        PLAN.figure_files(),
        PLAN.pair_files(),
        PLAN.cross_files(),


rule everything:
    # every experiment in params.yaml whose data is available here (the heavier ones too)
    input:
        PLAN.report_files(PLAN.available()),
        PLAN.figure_files(PLAN.available()),
        PLAN.pair_files(PLAN.available()),
        PLAN.cross_files(PLAN.available()),


onstart:
    # SLURM runs: the pre-flight checks of `pseudosup slurm-check` on this run's settings
    # and jobs; stops before anything is submitted if the cluster cannot run them
    # (a no-op for local runs).
    from pseudosup.stages.slurm_check import check_workflow

    check_workflow(workflow)
