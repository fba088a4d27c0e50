# Phase 1: download. Raw files of each dataset, verified by checksum.


rule fetch_dataset:
    input:
        code=code("download"),
    output:
        directory(PATTERNS["raw"]),
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "logs/benchmarks/fetch_dataset/{dataset}.tsv"
    resources:
        mem_mb=1000,
        runtime=600,  # GIST-1M is a 2.6 GB download
    params:
        p=download_params,
        file=PARAMS_FILE,
    shell:
        "pseudosup download --params {params.file} --keys {params.p} "
        "--dataset {wildcards.dataset} --out {output} --log {log}"


rule download:
    input:
        PLAN.raw_dirs(),
