# Interpretation: gradient maps and in-silico mutagenesis (ISM) of the fold models over the
# regions of interpret.bed, variant effects of interpret.vcf, and their figures for the report.

INTERPRET_GPU = INTERPRET["gpu"]
INTERPRET_TRACKS = selected_ids("interpret")
INTERPRET_REGIONS = [f"region{i}" for i in range(INTERPRET["plot_regions"])]

INTERPRET_OPTIONS = {
    "tracks": None if INTERPRET["tracks"] is None else SELECTED["interpret"],
    "window": INTERPRET["window"],
    "reduce": INTERPRET["reduce"],
    "rc": INTERPRET["rc"],
    "shifts": INTERPRET["shifts"],
    "tss": INTERPRET["tss"],
    "head": INTERPRET["head"],
    "aliases": GENOME["chrom_aliases"],
}
INTERPRET_GRADIENT = {  # gradient maps only
    "mc_n": INTERPRET["mc_n"],
    "return_all": INTERPRET["return_all"],
    "statistic": INTERPRET["statistic"],
    "untransform": INTERPRET["untransform"],
    "pseudo": INTERPRET["pseudo"],
}
INTERPRET_THREADS = step_threads(  # gradients and ism, variants: side by side on CPUs
    "interpret", 2 * bool(INTERPRET["bed"]) + bool(INTERPRET["vcf"])
)
INTERPRET_RESOURCES = {
    "gpu": 1 if INTERPRET_GPU else 0,
    "mem_mb": INTERPRET["mem_mb"],
    "runtime": INTERPRET["runtime"],
}


# what `rule all` asks of this step
INTERPRET_PLOTS = (INTERPRET_REGIONS if INTERPRET["bed"] else []) + (
    ["variants"] if INTERPRET["vcf"] else []
)
INTERPRET_OUTPUTS = (
    (
        ["results/interpret/gradients.h5", "results/interpret/ism.h5"]
        + expand("results/interpret/contrib/{track}.bw", track=INTERPRET_TRACKS)
        if INTERPRET["bed"]
        else []
    )
    + (["results/interpret/variants.h5"] if INTERPRET["vcf"] else [])
    + expand("results/plots/interpret/{name}.png", name=INTERPRET_PLOTS)
)


rule gradients:
    input:
        models=model_outputs(),
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        bed=optional(INTERPRET["bed"]),
    output:
        h5="results/interpret/gradients.h5",
        bigwigs=expand("results/interpret/contrib/{track}.bw", track=INTERPRET_TRACKS),
    params:
        options=INTERPRET_OPTIONS,
        gradient=INTERPRET_GRADIENT,
        batch_size=INTERPRET["batch_size"],
    log:
        "results/logs/interpret/gradients.log",
    benchmark:
        "results/benchmarks/interpret/gradients.tsv"
    threads: INTERPRET_THREADS
    resources:
        **INTERPRET_RESOURCES,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/gradients.py"


rule ism:
    input:
        models=model_outputs(),
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        bed=optional(INTERPRET["bed"]),
    output:
        "results/interpret/ism.h5",
    params:
        options=INTERPRET_OPTIONS,
        window_bp=INTERPRET["ism_width"],
        batch_size=INTERPRET["batch_size"],
    log:
        "results/logs/interpret/ism.log",
    benchmark:
        "results/benchmarks/interpret/ism.tsv"
    threads: INTERPRET_THREADS
    resources:
        **INTERPRET_RESOURCES,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/ism.py"


rule variants:
    input:
        models=model_outputs(),
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        vcf=optional(INTERPRET["vcf"]),
    output:
        "results/interpret/variants.h5",
    params:
        rc=INTERPRET["rc"],
        shifts=INTERPRET["shifts"],
        head=INTERPRET["head"],
        tracks=INTERPRET_OPTIONS["tracks"],
        sum_tracks=INTERPRET["sum_tracks"],
        aliases=GENOME["chrom_aliases"],
        batch_size=INTERPRET["batch_size"],
    log:
        "results/logs/interpret/variants.log",
    benchmark:
        "results/benchmarks/interpret/variants.tsv"
    threads: INTERPRET_THREADS
    resources:
        **INTERPRET_RESOURCES,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/variants.py"


rule interpret_plots:
    input:
        gradients=optional(INTERPRET["bed"] and "results/interpret/gradients.h5"),
        ism=optional(INTERPRET["bed"] and "results/interpret/ism.h5"),
        variants=optional(INTERPRET["vcf"] and "results/interpret/variants.h5"),
    output:
        **{
            name: report(
                f"results/plots/interpret/{name}.png",
                caption=f"../report/{'variants' if name == 'variants' else 'region'}.rst",
                category="Interpretation",
            )
            for name in INTERPRET_PLOTS
        },
        other_formats=expand(
            "results/plots/interpret/{name}.{fmt}", name=INTERPRET_PLOTS, fmt=PLOT_FORMATS[1:]
        ),
    params:
        formats=PLOT_FORMATS,
        width=INTERPRET["plot_width"],
        tracks=PLOTS_CONFIG["tracks"],
        dpi=PLOTS_CONFIG["dpi"],
    log:
        "results/logs/interpret/plots.log",
    benchmark:
        "results/benchmarks/interpret/plots.tsv"
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/interpret_plots.py"
