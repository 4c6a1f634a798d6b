# Prediction: the fold models' ensemble over the whole genome (or predict.bed), scattered over
# predict.shards jobs that each write results/predict/shards/{shard}.h5, then gathered into one
# bigWig per track (and per track variance), region values, TSS summaries and embeddings.

PREDICT_GPU = PREDICT["gpu"]
PREDICT_SHARDS = PREDICT["shards"]
PREDICT_SHARD_FILES = expand("results/predict/shards/{shard}.h5", shard=range(PREDICT_SHARDS))
PREDICT_VARIANCE = (
    {"variance": "results/predict/variance/{track}.bw"} if PREDICT["variance"] else {}
)


wildcard_constraints:
    shard="[0-9]+",


# what `rule all` asks of this step
PREDICT_TRACKS = selected_ids("predict")
PREDICT_OUTPUTS = (
    expand("results/predict/{track}.bw", track=PREDICT_TRACKS)
    + expand(list(PREDICT_VARIANCE.values()), track=PREDICT_TRACKS)
    + (["results/predict/regions.h5"] if PREDICT["regions_h5"] else [])
    + (["results/predict/tss.tsv"] if PREDICT["tss_bed"] else [])
    + (["results/predict/embeddings.h5"] if PREDICT["embed_bed"] else [])
)


rule predict:
    input:
        models=model_outputs(),
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        bed=optional(PREDICT["bed"]),
        contigs=optional(PREDICT["cross_fold"] and "results/data/contigs.bed"),
    output:
        "results/predict/shards/{shard}.h5",
    params:
        shards=PREDICT_SHARDS,
        seq_length=DATA["seq_length"],
        aliases=GENOME["chrom_aliases"],
        options={
            "overlap": PREDICT["overlap"],
            "stitch": PREDICT["stitch"],
            "rc": PREDICT["rc"],
            "shifts": PREDICT["shifts"],
            "untransform": PREDICT["untransform"],
            "variance": PREDICT["variance"],
            "batch_size": PREDICT["batch_size"],
            "head": PREDICT["head"],
            "tracks": None if PREDICT["tracks"] is None else SELECTED["predict"],
            "jit_compile": PREDICT["jit_compile"],
            "mc_n": PREDICT["mc_n"],
            "dtype": PREDICT["dtype"],
        },
    log:
        "results/logs/predict/shard{shard}.log",
    benchmark:
        "results/benchmarks/predict/shard{shard}.tsv"
    threads: step_threads("predict", PREDICT_SHARDS)
    resources:
        gpu=1 if PREDICT_GPU else 0,
        mem_mb=PREDICT["mem_mb"],
        runtime=PREDICT["runtime"],
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
        bed=optional(PREDICT["bed"]),
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
        bed=optional(PREDICT["tss_bed"]),
    output:
        report(
            "results/predict/tss.tsv", caption="../report/tss.rst", category="Predictions"
        ),
    params:
        window=PREDICT["tss_window"],
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
        bed=optional(PREDICT["embed_bed"]),
    output:
        "results/predict/embeddings.h5",
    params:
        layer=PREDICT["embed_layer"],
        batch_size=PREDICT["batch_size"],
        jit_compile=PREDICT["jit_compile"],
        aliases=GENOME["chrom_aliases"],
    log:
        "results/logs/embed.log",
    benchmark:
        "results/benchmarks/embed.tsv"
    threads: step_threads("predict", PREDICT_SHARDS)
    resources:
        gpu=1 if PREDICT_GPU else 0,
        mem_mb=PREDICT["mem_mb"],
        runtime=PREDICT["runtime"],
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/predict_embed.py"
