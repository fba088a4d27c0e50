# Cross-feature pseudo-supervision (issue 6, docs/cie.md): the instance benchmark, pairs
# mined across SIFT and CNN, collaborative index embedding, fine-tuning, evaluation, plots.
# Only experiments with `cross` in params.yaml match these rules' {experiment}.


# {experiment} matches only the experiments of params.yaml (everywhere): a cross-feature
# experiment's results/tables/<experiment>-retrieval.md is no report table of an
# experiment "<experiment>-retrieval".
wildcard_constraints:
    experiment=PLAN.experiment_regex(),


rule build_instance_bench:
    input:
        code=code("build_instance_bench"),
    output:
        directory("data/raw/copydays-style-synth"),
    log:
        "logs/download/copydays-style-synth.log",
    benchmark:
        "logs/benchmarks/build_instance_bench.tsv"
    resources:
        mem_mb=2000,
    params:
        p=params_of("instance_bench", "seed", "paths"),
        file=PARAMS_FILE,
    shell:
        "pseudosup build-instance-bench --params {params.file} --keys {params.p} --out {output} --log {log}"


ruleorder: build_instance_bench > fetch_dataset


rule mine_cross:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        source=lambda w: _feature_file(w, "sift", ".bow.npz"),
        target=lambda w: _feature_file(w, "cnn", ".npy"),
        target_meta=lambda w: _feature_file(w, "cnn", ".json"),
        split=_split_input,
        code=code("mine_cross"),
    output:
        pairs="data/pairs/{experiment}/cross.npz",
        stats="results/mining/{experiment}/cross.json",
    log:
        "logs/mining/{experiment}/cross.log",
    benchmark:
        "logs/benchmarks/mine_cross/{experiment}.tsv"
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    resources:
        mem_mb=4000,
    params:
        p=params_of("cross_mining", "mining", "seed"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
        split=lambda w: "" if _cross(w)["protocol"] else f"--split {PLAN.split(w.experiment)}",
        verify=lambda w: "" if _cross(w)["verify"] else "--no-verify",
    shell:
        "pseudosup mine-cross --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {params.dataset} --raw {input.raw} --source {input.source} --target {input.target} "
        "{params.split} {params.verify} --out {output.pairs} --stats {output.stats} --log {log}"


rule cie:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        bow=lambda w: _feature_file(w, "sift", ".bow.npz"),
        cnn=lambda w: _feature_file(w, "cnn", ".npy"),
        split=_split_input,
        code=code("cie"),
    output:
        index="models/{experiment}/cie/embedded.npy",
        history="results/cie/{experiment}/history.json",
    log:
        "logs/train/{experiment}/cie.log",
    benchmark:
        "logs/benchmarks/cie/{experiment}.tsv"
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    resources:
        mem_mb=4000,
    params:
        p=params_of("cie", "mining", "seed"),
        file=PARAMS_FILE,
        task=_task,
    shell:
        "pseudosup cie --params {params.file} --keys {params.p} --threads {threads} "
        "--bow {input.bow} --cnn {input.cnn} {params.task} "
        "--out {output.index} --history {output.history} --log {log}"


rule finetune:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        pairs="data/pairs/{experiment}/cross.npz",
        weights=lambda w: PLAN.weights_file(_cross(w)["cnn"]),
        split=_split_input,
        code=code("finetune"),
    output:
        checkpoint="models/{experiment}/finetune/checkpoint.pt",
        features="models/{experiment}/finetune/features.npy",
        history="results/finetune/{experiment}/history.json",
    log:
        "logs/train/{experiment}/finetune.log",
    benchmark:
        "logs/benchmarks/finetune/{experiment}.tsv"
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    resources:
        mem_mb=6000,
    params:
        p=_finetune_params,
        file=PARAMS_FILE,
        task=_task,
        feature=lambda w: _cross(w)["cnn"],
    shell:
        "pseudosup finetune --params {params.file} --keys {params.p} --threads {threads} --feature {params.feature} "
        "--pairs {input.pairs} {params.task} "
        "--checkpoint {output.checkpoint} --features-out {output.features} --history {output.history} --log {log}"


rule evaluate_retrieval:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        bow=lambda w: _feature_file(w, "sift", ".bow.npz"),
        cnn=lambda w: _feature_file(w, "cnn", ".npy"),
        cie="models/{experiment}/cie/embedded.npy",
        finetuned="models/{experiment}/finetune/features.npy",
        pairs="data/pairs/{experiment}/cross.npz",
        split=_split_input,
        code=code("evaluate_retrieval"),
    output:
        run=PATTERNS["cross_run"],
        table=table(PATTERNS["cross_table"], "cross_table", "retrieval table", "Markdown"),
        metrics=PATTERNS["metrics"],
    log:
        "logs/evaluate/{experiment}/retrieval.log",
    benchmark:
        "logs/benchmarks/evaluate_retrieval/{experiment}.tsv"
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    resources:
        mem_mb=3000,
    params:
        p=params_of("retrieval", "evaluation", "experiments.{experiment}.evaluation"),
        file=PARAMS_FILE,
        task=_task,
        also=_also,
    shell:
        "pseudosup evaluate-retrieval --params {params.file} --keys {params.p} --threads {threads} "
        "--name {wildcards.experiment} "
        "--bow {input.bow} --cnn {input.cnn} --cie {input.cie} --finetuned {input.finetuned} --pairs {input.pairs} "
        "{params.task} "
        "{params.also} --out {output.run} --table {output.table} --metrics {output.metrics} --log {log}"


# a cross-feature experiment's metrics file comes from evaluate_retrieval, not report
ruleorder: evaluate_retrieval > report
# its pairs file data/pairs/<experiment>/cross.npz matches mine_pairs' pattern (feature "cross") too
ruleorder: mine_cross > mine_pairs


rule plot_cie:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        results=PATTERNS["cross_run"],
        cie_history="results/cie/{experiment}/history.json",
        ft_history="results/finetune/{experiment}/history.json",
        bow=lambda w: _feature_file(w, "sift", ".bow.npz"),
        cnn=lambda w: _feature_file(w, "cnn", ".npy"),
        cie="models/{experiment}/cie/embedded.npy",
        split=_split_input,
        code=code("plot_cie"),
    output:
        maps=figure(PATTERNS["cie_map"], "cie_map", "mAP per index, CIE iterations"),
        finetune=figure(PATTERNS["finetune_plot"], "finetune", "fine-tuning loss and mAP per epoch"),
        gallery=figure(PATTERNS["cie_gallery"], "cie_gallery", "query gallery (SIFT, CNN, CIE)"),
    log:
        "logs/plot/{experiment}-cie.log",
    benchmark:
        "logs/benchmarks/plot_cie/{experiment}.tsv"
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    params:
        p=params_of("retrieval"),
        file=PARAMS_FILE,
        task=_task,
    shell:
        "pseudosup plot-cie --params {params.file} --keys {params.p} --results {input.results} "
        "--cie-history {input.cie_history} --finetune-history {input.ft_history} "
        "--map-plot {output.maps} --finetune-plot {output.finetune} --gallery {output.gallery} "
        "--bow {input.bow} --cnn {input.cnn} --cie {input.cie} {params.task} --log {log}"


rule cross:
    # the cross-feature experiments of params `targets` (their own phase target)
    input:
        PLAN.cross_files(),
