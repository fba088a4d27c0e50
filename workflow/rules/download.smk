# Phase 1: download. Raw files of each dataset, verified by checksum.


def download_params(wildcards):
    """paths, plus the dataset's own options when params.yaml has any."""
    extra = [f"datasets.{wildcards.dataset}"] if wildcards.dataset in config["datasets"] else []
    return PLAN.params("paths", *extra, **dict(wildcards.items()))


rule fetch_dataset:
    output:
        directory(PATTERNS["raw"]),
    input:
        code=code("download"),
    params:
        p=download_params,
        file=PARAMS_FILE,
    log:
        "logs/download/{dataset}.log",
    resources:
        mem_mb=1000,
        runtime=600,  # GIST-1M is a 2.6 GB download
    shell:
        "pseudosup download --params {params.file} --keys {params.p} "
        "--dataset {wildcards.dataset} --out {output} --log {log}"


rule download:
    input:
        PLAN.raw_dirs(),
