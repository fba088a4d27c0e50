# Phase 3: mining. Reversible (k-reciprocal) nearest-neighbour pairs of the database
# in each feature space: the pseudo-supervision of the methods.


rule mine_pairs:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        features=lambda w: PLAN.features(w.experiment, w.feature),
        features_meta=lambda w: PLAN.features_meta(w.experiment, w.feature),
        split=lambda w: PLAN.split(w.experiment),
        code=code("mine"),
    output:
        pairs=PATTERNS["pairs"],
        stats=PATTERNS["mining_stats"],
    log:
        "logs/mining/{experiment}/{feature}.log",
    benchmark:
        "logs/benchmarks/mine_pairs/{experiment}/{feature}.tsv"
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        # kNN on GPUs when params `gpus` > 0 and the node's faiss build supports them
        gpu=config.get("gpus", 0),
    params:
        p=params_of("mining"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    shell:
        "pseudosup mine --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {params.dataset} --raw {input.raw} --features {input.features} "
        "--split {input.split} --out {output.pairs} --stats {output.stats} --log {log}"


rule mining:
    input:
        PLAN.pair_files(),
