# Phase 6: plot. Figures from run files only; the gallery also reads images/codes.


rule plot_figures:
    output:
        map_vs_bits=PATTERNS["map_vs_bits"],
        pr_curves=PATTERNS["pr_curves"],
    input:
        runs=lambda w: PLAN.run_files(w.experiment),
        code=code("plot"),
    log:
        "logs/plot/{experiment}.log",
    shell:
        "pseudosup plot --runs {input.runs} --map-vs-bits {output.map_vs_bits} "
        "--pr-curves {output.pr_curves} --title {wildcards.experiment}: --log {log}"


rule plot_features:
    output:
        PATTERNS["feature_map"],
    input:
        runs=lambda w: PLAN.run_files(w.experiment),
        code=code("plot"),
    log:
        "logs/plot/{experiment}-features.log",
    shell:
        "pseudosup plot --runs {input.runs} --feature-map {output} --title {wildcards.experiment}: --log {log}"


rule plot_gallery:
    output:
        PATTERNS["gallery"],
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        features=lambda w: PLAN.gallery_features(w.experiment),
        features_meta=lambda w: PLAN.gallery_features_meta(w.experiment),
        model=lambda w: PLAN.gallery_model(w.experiment),
        split=lambda w: PLAN.split(w.experiment),
        code=code("gallery"),
    params:
        p=params_of("experiments.{experiment}.gallery"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    log:
        "logs/plot/{experiment}-gallery.log",
    shell:
        "pseudosup gallery --params {params.file} --keys {params.p} --experiment {wildcards.experiment} "
        "--dataset {params.dataset} --raw {input.raw} --features {input.features} "
        "--model {input.model} --split {input.split} --out {output} --log {log}"


rule plot:
    input:
        PLAN.figure_files(),
