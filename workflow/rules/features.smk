# Phase 2: features. Learned extractors are pre-trained first (on data disjoint from
# the queries and the database), then every item of the dataset is described.


rule pretrain_cnn:
    input:
        raw=PATTERNS["raw"],
        split=lambda w: PLAN.pretrain_split(w.feature),
        code=code("pretrain"),
    output:
        PATTERNS["backbone"],
    log:
        "logs/pretrain/{dataset}/{feature}.log",
    benchmark:
        "logs/benchmarks/pretrain_cnn/{dataset}/{feature}.tsv"
    threads: THREADS
    resources:
        mem_mb=3000,
        runtime=60,
        # GPUs per job from params `gpus` (0: CPU only; SLURM jobs request them with --gpus)
        gpu=config.get("gpus", 0),
    params:
        p=params_of("seed", "features.{feature}"),
        file=PARAMS_FILE,
    shell:
        "pseudosup pretrain --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {wildcards.dataset} --raw {input.raw} --split {input.split} "
        "--feature {wildcards.feature} --out {output} --log {log}"


rule fit_features:
    input:
        raw=PATTERNS["raw"],
        split=lambda w: PLAN.fit_split(w.feature),
        weights=lambda w: PLAN.weights_file(w.feature),
        code=code("fit_features"),
    # vocabularies (sift-bow) and PCA-whitening (cnn), fitted on a part disjoint from
    # what they are evaluated on when the feature's params name a split
    output:
        PATTERNS["fitted"],
    log:
        "logs/fit_features/{dataset}/{feature}.log",
    benchmark:
        "logs/benchmarks/fit_features/{dataset}/{feature}.tsv"
    threads: THREADS
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        p=params_of("seed", "features.{feature}"),
        file=PARAMS_FILE,
        split=lambda w, input: f"--split {input.split}" if input.split else "",
    shell:
        "pseudosup fit-features --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {wildcards.dataset} --raw {input.raw} --feature {wildcards.feature} "
        "{params.split} --out {output} --log {log}"


rule extract_features:
    input:
        raw=PATTERNS["raw"],
        backbone=lambda w: PLAN.backbone(w.dataset, w.feature),
        fitted=lambda w: PLAN.fitted(w.dataset, w.feature),
        weights=lambda w: PLAN.weights_file(w.feature),
        code=code("features"),
    output:
        features=PATTERNS["features"],
        meta=PATTERNS["features_meta"],
    log:
        "logs/features/{dataset}/{feature}.log",
    benchmark:
        "logs/benchmarks/extract_features/{dataset}/{feature}.tsv"
    threads: THREADS
    resources:
        mem_mb=3000,
        runtime=60,
        # only CNN extractors can use a GPU (params `gpus`; SLURM --gpus)
        gpu=lambda w: config.get("gpus", 0) if PLAN.extractor(w.feature).gpu else 0,
    params:
        p=params_of("seed", "features.{feature}"),
        file=PARAMS_FILE,
        backbone=lambda w, input: f"--backbone {input.backbone}" if input.backbone else "",
        fitted=lambda w, input: f"--fitted {input.fitted}" if input.fitted else "",
    shell:
        "pseudosup features --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {wildcards.dataset} --raw {input.raw} --feature {wildcards.feature} "
        "{params.backbone} {params.fitted} --out {output.features} --log {log}"


# sift-bow features also write the sparse bag of words (CIE's inverted index)
rule extract_bow_features:
    input:
        raw=PATTERNS["raw"],
        fitted=PATTERNS["fitted"],
        code=code("features"),
    output:
        features=PATTERNS["features"],
        meta=PATTERNS["features_meta"],
        bow=PATTERNS["features_bow"],
    log:
        "logs/features/{dataset}/{feature}.log",
    benchmark:
        "logs/benchmarks/extract_bow_features/{dataset}/{feature}.tsv"
    wildcard_constraints:
        feature=PLAN.bow_features_regex(),
    threads: THREADS
    resources:
        mem_mb=3000,
        runtime=120,
    params:
        p=params_of("seed", "features.{feature}"),
        file=PARAMS_FILE,
    shell:
        "pseudosup features --params {params.file} --keys {params.p} --threads {threads} "
        "--dataset {wildcards.dataset} --raw {input.raw} --feature {wildcards.feature} "
        "--fitted {input.fitted} --bow-out {output.bow} --out {output.features} --log {log}"


ruleorder: extract_bow_features > extract_features


rule features:
    input:
        PLAN.feature_files(),
