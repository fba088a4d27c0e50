# Phase 5: evaluate. Hamming ranking of each model, Euclidean ranking of each feature
# (the ceiling), then one metrics file and table per experiment.


rule evaluate_hasher:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        model=PATTERNS["model"],
        features=lambda w: PLAN.features(w.experiment, w.feature),
        features_meta=lambda w: PLAN.features_meta(w.experiment, w.feature),
        split=lambda w: PLAN.split(w.experiment),
        code=code("evaluate"),
    output:
        PATTERNS["run"],
    log:
        "logs/evaluate/{experiment}/{feature}/{method}-{bits}.log",
    benchmark:
        "logs/benchmarks/evaluate_hasher/{experiment}/{feature}/{method}-{bits}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        p=params_of("evaluation", "experiments.{experiment}.evaluation"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    shell:
        "pseudosup evaluate --params {params.file} --keys {params.p} --threads {threads} "
        "--model {input.model} --dataset {params.dataset} --raw {input.raw} "
        "--features {input.features} --split {input.split} --out {output} --log {log}"


rule evaluate_euclidean:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        features=lambda w: PLAN.features(w.experiment, w.feature),
        features_meta=lambda w: PLAN.features_meta(w.experiment, w.feature),
        bow=lambda w: PLAN.sparse_of(w.experiment, w.feature),
        split=lambda w: PLAN.split(w.experiment),
        code=code("evaluate"),
    output:
        PATTERNS["ceiling"],
    log:
        "logs/evaluate/{experiment}/{feature}/euclidean.log",
    benchmark:
        "logs/benchmarks/evaluate_euclidean/{experiment}/{feature}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        p=params_of("evaluation", "experiments.{experiment}.evaluation"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    shell:
        "pseudosup evaluate --params {params.file} --keys {params.p} --threads {threads} "
        "--euclidean --dataset {params.dataset} --raw {input.raw} "
        "--features {input.features} --bow {input.bow} --split {input.split} --out {output} --log {log}"


rule report:
    input:
        runs=lambda w: PLAN.run_files(w.experiment),
        mining=lambda w: PLAN.mining_stats(w.experiment),
        code=code("report"),
    output:
        metrics=PATTERNS["metrics"],
        table=table(PATTERNS["table"], "table", "results table", "Markdown"),
        csv=table(PATTERNS["table"].replace(".md", ".csv"), "table_csv", "results, one row per run", "CSV"),
        # compact per-run summary (dvc.yaml `metrics:`) and plot data (dvc.yaml `plots:`)
        summary=directory(PATTERNS["summary"]),
        plots=directory(PATTERNS["plot_data"]),
    log:
        "logs/report/{experiment}.log",
    benchmark:
        "logs/benchmarks/report/{experiment}.tsv"
    params:
        p=params_of("experiments.{experiment}"),
        file=PARAMS_FILE,
    shell:
        "pseudosup report --params {params.file} --keys {params.p} --experiment {wildcards.experiment} "
        "--runs {input.runs} --mining {input.mining} --metrics {output.metrics} "
        "--table {output.table} --summary {output.summary} --plots {output.plots} --log {log}"


rule evaluate:
    input:
        PLAN.report_files(),
