# Figures of the data, training and evaluation (results/plots/), an HTML summary table and the
# configuration used, each registered for `snakemake --report report.html` with its caption in
# workflow/report/. Figures are PNG, and also svg / pdf by plots.formats.

# an imported model that is not fine-tuned has no training curves
PLOT_NAMES = ["data", *([] if NO_TRAINING else ["training"]), "scatter", "r_distribution", "folds",
              "loci", "roc_pr"]
PLOT_FORMATS = ["png"] + [f for f in PLOTS_CONFIG["formats"] if f != "png"]
REPORT_OUTPUTS = [
    *expand("results/plots/{name}.{fmt}", name=PLOT_NAMES, fmt=PLOT_FORMATS),
    "results/plots/summary.html",
    "results/report/config.html",
]


rule plots:
    input:
        histories=(
            [] if NO_TRAINING else expand("results/models/f{fold}/history.tsv", fold=MODEL_FOLDS)
        ),
        summary="results/eval/cv_summary.tsv",
        examples=expand("results/eval/f{fold}/examples.h5", fold=MODEL_FOLDS),
        sequences="results/data/sequences.bed",
    output:
        data=report(
            "results/plots/data.png", caption="../report/data.rst", category="Data"
        ),
        **(
            {}
            if NO_TRAINING
            else {
                "training": report(
                    "results/plots/training.png",
                    caption="../report/training.rst",
                    category="Training",
                )
            }
        ),
        summary=report(
            "results/plots/summary.html",
            caption="../report/summary.rst",
            category="Evaluation",
            subcategory="Summary across folds",
        ),
        scatter=report(
            "results/plots/scatter.png",
            caption="../report/scatter.rst",
            category="Evaluation",
            subcategory="Figures",
        ),
        r_distribution=report(
            "results/plots/r_distribution.png",
            caption="../report/r_distribution.rst",
            category="Evaluation",
            subcategory="Figures",
        ),
        folds=report(
            "results/plots/folds.png",
            caption="../report/folds.rst",
            category="Evaluation",
            subcategory="Figures",
        ),
        loci=report(
            "results/plots/loci.png",
            caption="../report/loci.rst",
            category="Evaluation",
            subcategory="Figures",
        ),
        roc_pr=report(
            "results/plots/roc_pr.png",
            caption="../report/roc_pr.rst",
            category="Evaluation",
            subcategory="Figures",
        ),
        other_formats=expand(
            "results/plots/{name}.{fmt}", name=PLOT_NAMES, fmt=PLOT_FORMATS[1:]
        ),
    params:
        folds=[f"f{fold}" for fold in MODEL_FOLDS],
        formats=PLOT_FORMATS,
        tracks=PLOTS_CONFIG["tracks"],
        n_loci=PLOTS_CONFIG["n_loci"],
        dpi=PLOTS_CONFIG["dpi"],
    log:
        "results/logs/plots.log",
    benchmark:
        "results/benchmarks/plots.tsv"
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/plots.py"


rule config_page:
    output:
        report(
            "results/report/config.html",
            caption="../report/config.rst",
            category="Configuration",
        ),
    params:
        config=config,
    log:
        "results/logs/config_page.log",
    benchmark:
        "results/benchmarks/config_page.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/config_page.py"
