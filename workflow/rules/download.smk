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


rule draw_split:
    # A split whose protocol is drawn from the data (e.g. cifar10-q1k from the labels),
    # made once after the download and then an input like a committed one: commit
    # data/splits/<split>.json and SHA256SUMS (the log says so). Never matches a
    # committed split (Plan.drawn_splits).
    input:
        raw=lambda w: PATTERNS["raw"].format(dataset=PLAN.drawn_splits()[w.split][1]),
        code=code("make_split"),
    output:
        PATTERNS["split"],
    log:
        "logs/download/split-{split}.log",
    benchmark:
        "logs/benchmarks/draw_split/{split}.tsv"
    wildcard_constraints:
        split=PLAN.drawn_split_regex(),
    resources:
        mem_mb=2000,
    params:
        protocol=lambda w: PLAN.drawn_splits()[w.split][0],
        dataset=lambda w: PLAN.drawn_splits()[w.split][1],
        seed=config["seed"],
    shell:
        "pseudosup make-split --protocol {params.protocol} --dataset {params.dataset} "
        "--raw {input.raw} --seed {params.seed} --log {log}"
