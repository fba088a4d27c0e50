# Phase 4: train. One model per (experiment, feature, method, code length).


rule train_hasher:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        features=lambda w: PLAN.features(w.experiment, w.feature),
        features_meta=lambda w: PLAN.features_meta(w.experiment, w.feature),
        split=lambda w: PLAN.split(w.experiment),
        code=code("train"),
    output:
        PATTERNS["model"],
    log:
        "logs/train/{experiment}/{feature}/{method}-{bits}.log",
    benchmark:
        "logs/benchmarks/train_hasher/{experiment}/{feature}/{method}-{bits}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,  # LDPH at 128 bits takes minutes
    params:
        p=params_of("seed", "methods.{method}"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    shell:
        "pseudosup train --params {params.file} --keys {params.p} --threads {threads} "
        "--method {wildcards.method} --bits {wildcards.bits} --features {input.features} "
        "--split {input.split} --dataset {params.dataset} --raw {input.raw} --out {output} --log {log}"


rule train:
    input:
        PLAN.model_files(),
