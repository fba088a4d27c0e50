# Phase 2: features. Learned extractors are pre-trained first (on data disjoint from
# the queries and the database), then every item of the dataset is described.


rule pretrain_cnn:
    output:
        PATTERNS["backbone"],
    input:
        raw=PATTERNS["raw"],
        split=lambda w: PLAN.pretrain_split(w.feature),
        code=code("pretrain"),
    params:
        p=params_of("seed", "features.{feature}"),
        file=PARAMS_FILE,
    threads: THREADS
    log:
        "logs/pretrain/{dataset}/{feature}.log",
    resources:
        mem_mb=3000,
        runtime=60,
        # GPUs per job from params `gpus` (0: CPU only; SLURM jobs request them with --gpus)
        gpu=config.get("gpus", 0),
    shell:
        "pseudosup pretrain --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {wildcards.dataset} --raw {input.raw} --split {input.split} "
        "--feature {wildcards.feature} --out {output} --log {log}"


rule extract_features:
    output:
        features=PATTERNS["features"],
        meta=PATTERNS["features_meta"],
    input:
        raw=PATTERNS["raw"],
        backbone=lambda w: PLAN.backbone(w.dataset, w.feature),
        code=code("features"),
    params:
        p=params_of("features.{feature}"),
        file=PARAMS_FILE,
        backbone=lambda w, input: f"--backbone {input.backbone}" if input.backbone else "",
    threads: THREADS
    log:
        "logs/features/{dataset}/{feature}.log",
    resources:
        mem_mb=3000,
        runtime=60,
        # only CNN extractors can use a GPU
        gpu=lambda w: config.get("gpus", 0) if config["features"][w.feature]["extractor"] in ("small-cnn", "cnn") else 0,
    shell:
        "pseudosup features --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {wildcards.dataset} --raw {input.raw} --feature {wildcards.feature} "
        "{params.backbone} --out {output.features} --log {log}"


rule features:
    input:
        PLAN.feature_files(),
