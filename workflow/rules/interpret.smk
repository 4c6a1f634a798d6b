# Interpretation: gradient maps and in-silico mutagenesis (ISM) of the fold models over the
# regions of interpret.bed, variant effects of interpret.vcf, and their figures for the report.

INTERPRET = config.get("interpret", {})
INTERPRET_GPU = INTERPRET.get("gpu", TRAIN.get("gpu", False))
INTERPRET_TRACKS = INTERPRET.get("tracks") or TRACKS
INTERPRET_REGIONS = [f"region{i}" for i in range(INTERPRET.get("plot_regions", 3))]

_unknown = sorted(set(INTERPRET_TRACKS) - set(TRACKS))
if _unknown:
    fail(
        f"interpret.tracks in {CONFIG_NAME} names {', '.join(_unknown)}, not in "
        f"{config['targets']}; use identifiers of the track sheet or null (all)"
    )
for _key in ("bed", "vcf"):
    _path = INTERPRET.get(_key)
    if _path and not generated(_path) and not os.path.isfile(_path):
        fail(f"{_path}: interpret.{_key} file not found; fix the path in {CONFIG_NAME} or null")

INTERPRET_OPTIONS = {
    "tracks": INTERPRET.get("tracks"),
    "window": INTERPRET.get("window"),
    "reduce": INTERPRET.get("reduce", "sum"),
    "rc": INTERPRET.get("rc", True),
    "shifts": INTERPRET.get("shifts", [0]),
    "tss": INTERPRET.get("tss", False),
    "head": INTERPRET.get("head"),
    "aliases": GENOME.get("chrom_aliases", {}),
}
INTERPRET_RESOURCES = {
    "gpu": 1 if INTERPRET_GPU else 0,
    "mem_mb": INTERPRET.get("mem_mb", 8000),
    "runtime": INTERPRET.get("runtime", 240),
}


# what `rule all` asks of this step
INTERPRET_PLOTS = (INTERPRET_REGIONS if INTERPRET.get("bed") else []) + (
    ["variants"] if INTERPRET.get("vcf") else []
)
INTERPRET_OUTPUTS = (
    (
        ["results/interpret/gradients.h5", "results/interpret/ism.h5"]
        + expand("results/interpret/contrib/{track}.bw", track=INTERPRET_TRACKS)
        if INTERPRET.get("bed")
        else []
    )
    + (["results/interpret/variants.h5"] if INTERPRET.get("vcf") else [])
    + expand("results/plots/interpret/{name}.png", name=INTERPRET_PLOTS)
)


rule gradients:
    input:
        models=model_outputs(),
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        bed=optional(INTERPRET.get("bed")),
    output:
        h5="results/interpret/gradients.h5",
        bigwigs=expand("results/interpret/contrib/{track}.bw", track=INTERPRET_TRACKS),
    params:
        options=INTERPRET_OPTIONS,
        batch_size=INTERPRET.get("batch_size", 8),
    log:
        "results/logs/interpret/gradients.log",
    benchmark:
        "results/benchmarks/interpret/gradients.tsv"
    threads: INTERPRET.get("threads", 4)
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
        bed=optional(INTERPRET.get("bed")),
    output:
        "results/interpret/ism.h5",
    params:
        options=INTERPRET_OPTIONS,
        window_bp=INTERPRET.get("ism_width", 100),
        batch_size=INTERPRET.get("batch_size", 8),
    log:
        "results/logs/interpret/ism.log",
    benchmark:
        "results/benchmarks/interpret/ism.tsv"
    threads: INTERPRET.get("threads", 4)
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
        vcf=optional(INTERPRET.get("vcf")),
    output:
        "results/interpret/variants.h5",
    params:
        rc=INTERPRET.get("rc", True),
        shifts=INTERPRET.get("shifts", [0]),
        head=INTERPRET.get("head"),
        aliases=GENOME.get("chrom_aliases", {}),
        batch_size=INTERPRET.get("batch_size", 8),
    log:
        "results/logs/interpret/variants.log",
    benchmark:
        "results/benchmarks/interpret/variants.tsv"
    threads: INTERPRET.get("threads", 4)
    resources:
        **INTERPRET_RESOURCES,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/variants.py"


rule interpret_plots:
    input:
        gradients=optional(INTERPRET.get("bed") and "results/interpret/gradients.h5"),
        ism=optional(INTERPRET.get("bed") and "results/interpret/ism.h5"),
        variants=optional(INTERPRET.get("vcf") and "results/interpret/variants.h5"),
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
        width=INTERPRET.get("plot_width", 60),
        tracks=PLOTS_CONFIG.get("tracks"),
        dpi=PLOTS_CONFIG.get("dpi", 150),
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
