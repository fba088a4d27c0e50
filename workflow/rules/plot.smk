# Phase 6: plot. Figures from run files only; the gallery also reads images/codes.


rule plot_figures:
    input:
        runs=lambda w: PLAN.run_files(w.experiment),
        code=code("plot"),
    output:
        map_vs_bits=figure(PATTERNS["map_vs_bits"], "map_vs_bits", "retrieval quality vs code length"),
        pr_curves=figure(PATTERNS["pr_curves"], "pr_curves", "precision-recall (Hamming radius)"),
    log:
        "logs/plot/{experiment}.log",
    benchmark:
        "logs/benchmarks/plot_figures/{experiment}.tsv"
    shell:
        "pseudosup plot --runs {input.runs} --map-vs-bits {output.map_vs_bits} "
        "--pr-curves {output.pr_curves} --title {wildcards.experiment}: --log {log}"


rule plot_features:
    input:
        runs=lambda w: PLAN.run_files(w.experiment),
        code=code("plot"),
    output:
        figure(PATTERNS["feature_map"], "feature_map", "features compared (Euclidean ranking)"),
    log:
        "logs/plot/{experiment}-features.log",
    benchmark:
        "logs/benchmarks/plot_features/{experiment}.tsv"
    shell:
        "pseudosup plot --runs {input.runs} --feature-map {output} --title {wildcards.experiment}: --log {log}"


rule plot_gallery:
    input:
        raw=lambda w: PLAN.raw(w.experiment),
        features=lambda w: PLAN.gallery_features(w.experiment),
        features_meta=lambda w: PLAN.gallery_features_meta(w.experiment),
        model=lambda w: PLAN.gallery_model(w.experiment),
        split=lambda w: PLAN.split(w.experiment),
        code=code("gallery"),
    output:
        figure(PATTERNS["gallery"], "gallery", "query gallery (Hamming ranking)"),
    log:
        "logs/plot/{experiment}-gallery.log",
    benchmark:
        "logs/benchmarks/plot_gallery/{experiment}.tsv"
    params:
        p=params_of("experiments.{experiment}.gallery"),
        file=PARAMS_FILE,
        dataset=lambda w: PLAN.dataset(w.experiment),
    shell:
        "pseudosup gallery --params {params.file} --keys {params.p} --experiment {wildcards.experiment} "
        "--dataset {params.dataset} --raw {input.raw} --features {input.features} "
        "--model {input.model} --split {input.split} --out {output} --log {log}"


rule plot:
    input:
        PLAN.figure_files(),
