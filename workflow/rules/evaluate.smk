# Phase 5: evaluate. Hamming ranking of each model, Euclidean ranking of each feature
# (the ceiling), then one metrics file and table per experiment.


rule evaluate_hasher:
    output:
        PATTERNS["run"],
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        model=PATTERNS["model"],
        features=lambda w: PLAN.features(w.experiment, w.feature),
        features_meta=lambda w: PLAN.features_meta(w.experiment, w.feature),
        split=lambda w: PLAN.split(w.experiment),
        code=code("evaluate"),
    params:
        p=params_of("evaluation", "experiments.{experiment}.evaluation"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    threads: 1
    log:
        "logs/evaluate/{experiment}/{feature}/{method}-{bits}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "pseudosup evaluate --params {params.file} --keys {params.p} --threads {threads} "
        "--model {input.model} --dataset {params.dataset} --raw {input.raw} "
        "--features {input.features} --split {input.split} --out {output} --log {log}"


rule evaluate_euclidean:
    output:
        PATTERNS["ceiling"],
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        features=lambda w: PLAN.features(w.experiment, w.feature),
        features_meta=lambda w: PLAN.features_meta(w.experiment, w.feature),
        bow=lambda w: PLAN.sparse_of(w.experiment, w.feature),
        split=lambda w: PLAN.split(w.experiment),
        code=code("evaluate"),
    params:
        p=params_of("evaluation", "experiments.{experiment}.evaluation"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    threads: 1
    log:
        "logs/evaluate/{experiment}/{feature}/euclidean.log",
    resources:
        mem_mb=3000,
        runtime=30,
    shell:
        "pseudosup evaluate --params {params.file} --keys {params.p} --threads {threads} "
        "--euclidean --dataset {params.dataset} --raw {input.raw} "
        "--features {input.features} --bow {input.bow} --split {input.split} --out {output} --log {log}"


rule report:
    output:
        metrics=PATTERNS["metrics"],
        table=PATTERNS["table"],
        csv=PATTERNS["table"].replace(".md", ".csv"),
    input:
        runs=lambda w: PLAN.run_files(w.experiment),
        mining=lambda w: PLAN.mining_stats(w.experiment),
        code=code("report"),
    params:
        p=params_of("experiments.{experiment}"),
        file=PARAMS_FILE,
    log:
        "logs/report/{experiment}.log",
    shell:
        "pseudosup report --params {params.file} --keys {params.p} --experiment {wildcards.experiment} "
        "--runs {input.runs} --mining {input.mining} --metrics {output.metrics} "
        "--table {output.table} --log {log}"


rule evaluate:
    input:
        PLAN.report_files(),
