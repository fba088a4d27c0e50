# Cross-feature pseudo-supervision (issue 6, docs/cie.md): the instance benchmark, pairs
# mined across SIFT and CNN, collaborative index embedding, fine-tuning, evaluation, plots.
# Only experiments with `cross` in params.yaml match these rules' {experiment}.


# {experiment} matches only the experiments of params.yaml (everywhere): a cross-feature
# experiment's results/tables/<experiment>-retrieval.md is no report table of an
# experiment "<experiment>-retrieval".
wildcard_constraints:
    experiment=PLAN.experiment_regex(),


def _cross(w):
    return PLAN.experiment(w.experiment)["cross"]


def _feature_file(w, which, suffix):
    return f"data/features/{PLAN.dataset(w.experiment)}/{_cross(w)[which]}{suffix}"


def _split_input(w):
    return [] if _cross(w)["protocol"] else [PLAN.split(w.experiment)]


def _task(w):
    """The stages' --dataset/--raw and protocol (instance ground truth or split)."""
    c = _cross(w)
    task = f"--dataset {PLAN.dataset(w.experiment)} --raw {PLAN.raw(w.experiment)} "
    return task + (f"--protocol {c['protocol']}" if c["protocol"] else f"--split {PLAN.split(w.experiment)}")


def _also(w):
    """Further instance protocols scored by evaluate-retrieval on the same indexes."""
    return " ".join(f"--also-protocol {p}" for p in _cross(w).get("also", []))


rule build_instance_bench:
    output:
        directory("data/raw/copydays-style-synth"),
    input:
        code=code("build_instance_bench"),
    params:
        p=params_of("instance_bench", "seed", "paths"),
        file=PARAMS_FILE,
    log:
        "logs/download/copydays-style-synth.log",
    resources:
        mem_mb=2000,
    shell:
        "pseudosup build-instance-bench --params {params.file} --keys {params.p} --out {output} --log {log}"


ruleorder: build_instance_bench > fetch_dataset


rule mine_cross:
    output:
        pairs="data/pairs/{experiment}/cross.npz",
        stats="results/mining/{experiment}/cross.json",
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        source=lambda w: _feature_file(w, "sift", ".bow.npz"),
        target=lambda w: _feature_file(w, "cnn", ".npy"),
        target_meta=lambda w: _feature_file(w, "cnn", ".json"),
        split=_split_input,
        code=code("mine_cross"),
    params:
        p=params_of("cross_mining", "mining", "seed"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
        split=lambda w: "" if _cross(w)["protocol"] else f"--split {PLAN.split(w.experiment)}",
        verify=lambda w: "" if _cross(w)["verify"] else "--no-verify",
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    log:
        "logs/mining/{experiment}/cross.log",
    resources:
        mem_mb=4000,
    shell:
        "pseudosup mine-cross --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {params.dataset} --raw {input.raw} --source {input.source} --target {input.target} "
        "{params.split} {params.verify} --out {output.pairs} --stats {output.stats} --log {log}"


rule cie:
    output:
        index="models/{experiment}/cie/embedded.npy",
        history="results/cie/{experiment}/history.json",
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        bow=lambda w: _feature_file(w, "sift", ".bow.npz"),
        cnn=lambda w: _feature_file(w, "cnn", ".npy"),
        split=_split_input,
        code=code("cie"),
    params:
        p=params_of("cie", "mining", "seed"),
        file=PARAMS_FILE,
        task=_task,
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    log:
        "logs/train/{experiment}/cie.log",
    resources:
        mem_mb=4000,
    shell:
        "pseudosup cie --params {params.file} --keys {params.p} --threads {threads} "
        "--bow {input.bow} --cnn {input.cnn} {params.task} "
        "--out {output.index} --history {output.history} --log {log}"


rule finetune:
    output:
        checkpoint="models/{experiment}/finetune/checkpoint.pt",
        features="models/{experiment}/finetune/features.npy",
        history="results/finetune/{experiment}/history.json",
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        pairs="data/pairs/{experiment}/cross.npz",
        weights=lambda w: PLAN.weights_file(_cross(w)["cnn"]),
        split=_split_input,
        code=code("finetune"),
    params:
        p=lambda w: PLAN.params("finetune", f"experiments.{w.experiment}.cross.finetune",
                                f"features.{_cross(w)['cnn']}", "seed"),
        file=PARAMS_FILE,
        task=_task,
        feature=lambda w: _cross(w)["cnn"],
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    threads: THREADS
    log:
        "logs/train/{experiment}/finetune.log",
    resources:
        mem_mb=6000,
    shell:
        "pseudosup finetune --params {params.file} --keys {params.p} --threads {threads} --feature {params.feature} "
        "--pairs {input.pairs} {params.task} "
        "--checkpoint {output.checkpoint} --features-out {output.features} --history {output.history} --log {log}"


rule evaluate_retrieval:
    output:
        run=PATTERNS["cross_run"],
        table=PATTERNS["cross_table"],
        metrics=PATTERNS["metrics"],
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        bow=lambda w: _feature_file(w, "sift", ".bow.npz"),
        cnn=lambda w: _feature_file(w, "cnn", ".npy"),
        cie="models/{experiment}/cie/embedded.npy",
        finetuned="models/{experiment}/finetune/features.npy",
        split=_split_input,
        code=code("evaluate_retrieval"),
    params:
        p=params_of("retrieval", "evaluation", "experiments.{experiment}.evaluation"),
        file=PARAMS_FILE,
        task=_task,
        also=_also,
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    log:
        "logs/evaluate/{experiment}/retrieval.log",
    resources:
        mem_mb=3000,
    shell:
        "pseudosup evaluate-retrieval --params {params.file} --keys {params.p} --name {wildcards.experiment} "
        "--bow {input.bow} --cnn {input.cnn} --cie {input.cie} --finetuned {input.finetuned} {params.task} "
        "{params.also} --out {output.run} --table {output.table} --metrics {output.metrics} --log {log}"


# a cross-feature experiment's metrics file comes from evaluate_retrieval, not report
ruleorder: evaluate_retrieval > report


rule plot_cie:
    output:
        maps=PATTERNS["cie_map"],
        finetune=PATTERNS["finetune_plot"],
        gallery=PATTERNS["cie_gallery"],
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
    params:
        p=params_of("retrieval"),
        file=PARAMS_FILE,
        task=_task,
    wildcard_constraints:
        experiment=PLAN.cross_regex(),
    log:
        "logs/plot/{experiment}-cie.log",
    shell:
        "pseudosup plot-cie --params {params.file} --keys {params.p} --results {input.results} "
        "--cie-history {input.cie_history} --finetune-history {input.ft_history} "
        "--map-plot {output.maps} --finetune-plot {output.finetune} --gallery {output.gallery} "
        "--bow {input.bow} --cnn {input.cnn} --cie {input.cie} {params.task} --log {log}"


rule cross:
    # the cross-feature experiments of params `targets` (their own phase target)
    input:
        PLAN.cross_files(),
