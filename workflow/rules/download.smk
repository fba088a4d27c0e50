# Phase 1: download. Raw files of each dataset, verified by checksum.


rule fetch_dataset:
    output:
        directory(PATTERNS["raw"]),
    input:
        code=code("download"),
    params:
        p=params_of("paths"),
        file=PARAMS_FILE,
    log:
        "logs/download/{dataset}.log",
    resources:
        mem_mb=1000,
        runtime=120,
    shell:
        "pseudosup download --params {params.file} --keys {params.p} "
        "--dataset {wildcards.dataset} --out {output} --log {log}"


rule download:
    input:
        PLAN.raw_dirs(),
