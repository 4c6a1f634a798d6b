# Prediction: the fold models' ensemble over the whole genome (or predict.bed), scattered over
# predict.shards jobs that each write results/predict/shards/{shard}.h5, then gathered into one
# bigWig per track (and per track variance), region values, TSS summaries and embeddings.

PREDICT = config.get("predict", {})
PREDICT_GPU = PREDICT.get("gpu", TRAIN.get("gpu", False))
PREDICT_SHARDS = PREDICT.get("shards", 4)
PREDICT_SHARD_FILES = expand("results/predict/shards/{shard}.h5", shard=range(PREDICT_SHARDS))
PREDICT_VARIANCE = (
    {"variance": "results/predict/variance/{track}.bw"} if PREDICT.get("variance") else {}
)

if PREDICT.get("cross_fold") and not DATA["folds"]:
    fail(
        f"predict.cross_fold needs K-fold models; set data.folds >= 3 in {CONFIG_NAME} "
        "or predict.cross_fold: false"
    )
if PREDICT.get("regions_h5") and not PREDICT.get("bed"):
    fail(f"predict.regions_h5 needs the regions: set predict.bed in {CONFIG_NAME}")


wildcard_constraints:
    shard="[0-9]+",


# what `rule all` asks of this step
PREDICT_OUTPUTS = (
    expand("results/predict/{track}.bw", track=TRACKS)
    + expand(list(PREDICT_VARIANCE.values()), track=TRACKS)
    + (["results/predict/regions.h5"] if PREDICT.get("regions_h5") else [])
    + (["results/predict/tss.tsv"] if PREDICT.get("tss_bed") else [])
    + (["results/predict/embeddings.h5"] if PREDICT.get("embed_bed") else [])
)


rule predict:
    input:
        models=model_outputs(),
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        bed=optional(PREDICT.get("bed")),
        contigs=optional(PREDICT.get("cross_fold") and "results/data/contigs.bed"),
    output:
        "results/predict/shards/{shard}.h5",
    params:
        shards=PREDICT_SHARDS,
        seq_length=DATA["seq_length"],
        aliases=GENOME.get("chrom_aliases", {}),
        options={
            "overlap": PREDICT.get("overlap"),
            "stitch": PREDICT.get("stitch", "centre"),
            "rc": PREDICT.get("rc", True),
            "shifts": PREDICT.get("shifts", [0]),
            "untransform": PREDICT.get("untransform", True),
            "variance": PREDICT.get("variance", False),
            "batch_size": PREDICT.get("batch_size", 32),
            "head": PREDICT.get("head"),
            "jit_compile": PREDICT.get("jit_compile", False),
        },
    log:
        "results/logs/predict/shard{shard}.log",
    benchmark:
        "results/benchmarks/predict/shard{shard}.tsv"
    threads: PREDICT.get("threads", 4)
    resources:
        gpu=1 if PREDICT_GPU else 0,
        mem_mb=PREDICT.get("mem_mb", 8000),
        runtime=PREDICT.get("runtime", 720),
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/predict.py"


rule gather_bigwig:
    input:
        PREDICT_SHARD_FILES,
    output:
        values="results/predict/{track}.bw",
        **PREDICT_VARIANCE,
    log:
        "results/logs/gather_bigwig/{track}.log",
    benchmark:
        "results/benchmarks/gather_bigwig/{track}.tsv"
    resources:
        mem_mb=2000,
        runtime=120,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/gather_bigwig.py"


rule gather_regions:
    input:
        shards=PREDICT_SHARD_FILES,
        bed=optional(PREDICT.get("bed")),
    output:
        "results/predict/regions.h5",
    log:
        "results/logs/gather_regions.log",
    benchmark:
        "results/benchmarks/gather_regions.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/gather_regions.py"


rule gather_tss:
    input:
        shards=PREDICT_SHARD_FILES,
        bed=optional(PREDICT.get("tss_bed")),
    output:
        report(
            "results/predict/tss.tsv", caption="../report/tss.rst", category="Predictions"
        ),
    params:
        window=PREDICT.get("tss_window", 1000),
    log:
        "results/logs/gather_tss.log",
    benchmark:
        "results/benchmarks/gather_tss.tsv"
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/gather_tss.py"


rule embed:
    input:
        model=model_outputs()[0],
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        bed=optional(PREDICT.get("embed_bed")),
    output:
        "results/predict/embeddings.h5",
    params:
        layer=PREDICT.get("embed_layer"),
        batch_size=PREDICT.get("batch_size", 32),
        jit_compile=PREDICT.get("jit_compile", False),
        aliases=GENOME.get("chrom_aliases", {}),
    log:
        "results/logs/embed.log",
    benchmark:
        "results/benchmarks/embed.tsv"
    threads: PREDICT.get("threads", 4)
    resources:
        gpu=1 if PREDICT_GPU else 0,
        mem_mb=PREDICT.get("mem_mb", 8000),
        runtime=PREDICT.get("runtime", 720),
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/predict_embed.py"
