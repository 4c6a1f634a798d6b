# Data stage: genome FASTA + track sheet -> contigs, sequences, coverage, TFRecords.


wildcard_constraints:
    track="[A-Za-z0-9_.-]+",
    label="fold[0-9]+|train|valid|test",


rule demo:
    output:
        fasta=f"{DEMO_DIR}/genome.fa",
        fai=f"{DEMO_DIR}/genome.fa.fai",
        tracks=[f"{DEMO_DIR}/{f}" for f in ("peak.bw", "nuc.bw", "rna.fwd.bw", "rna.rev.bw")],
        motifs=f"{DEMO_DIR}/motifs.bed",
        regions=f"{DEMO_DIR}/regions.bed",
        variants=f"{DEMO_DIR}/variants.vcf",
    params:
        seed=config["demo_seed"],
    log:
        "results/logs/demo.log",
    benchmark:
        "results/benchmarks/demo.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/demo.py"


rule download:
    output:
        f"{DOWNLOADS}/{{name}}",
    params:
        url=lambda wc: DOWNLOAD_URLS[wc.name],
        sha256=lambda wc: URLS[DOWNLOAD_URLS[wc.name]],
    log:
        "results/logs/download/{name}.log",
    benchmark:
        "results/benchmarks/download/{name}.tsv"
    resources:
        mem_mb=500,
        runtime=120,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/download.py"


rule faidx:
    input:
        FASTA,
    output:
        "results/data/genome.fa.fai",
    log:
        "results/logs/faidx.log",
    benchmark:
        "results/benchmarks/faidx.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/faidx.py"


rule contigs:
    input:
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        gaps=optional(GENOME["gaps"]),
    output:
        "results/data/contigs.bed",
    params:
        data=DATA,
        chroms=GENOME["chroms"],
    log:
        "results/logs/contigs.log",
    benchmark:
        "results/benchmarks/contigs.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/contigs.py"


rule sequences:
    input:
        contigs="results/data/contigs.bed",
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        unmappable=optional(GENOME["unmappable"]),
    output:
        "results/data/sequences.bed",
    params:
        data=DATA,
    log:
        "results/logs/sequences.log",
    benchmark:
        "results/benchmarks/sequences.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/sequences.py"


rule coverage:
    input:
        sequences="results/data/sequences.bed",
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        track=track_file,
        blacklist=optional(GENOME["blacklist"]),
        unmappable=optional(GENOME["unmappable"]),
    output:
        "results/data/coverage/{track}.h5",
    params:
        row=track_row,
        data=DATA,
        aliases=GENOME["chrom_aliases"],
        bam=config["bam"],
    log:
        "results/logs/coverage/{track}.log",
    benchmark:
        "results/benchmarks/coverage/{track}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/coverage.py"


rule tfrecords:
    input:
        sequences="results/data/sequences.bed",
        fasta=FASTA,
        fai="results/data/genome.fa.fai",
        coverage=expand("results/data/coverage/{track}.h5", track=TRACKS),
    output:
        "results/data/tfrecords/{label}.json",
    params:
        seqs_per_tfr=DATA["seqs_per_tfr"],
    log:
        "results/logs/tfrecords/{label}.log",
    benchmark:
        "results/benchmarks/tfrecords/{label}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/tfrecords.py"


rule statistics:
    input:
        sequences="results/data/sequences.bed",
        sheet=config["targets"],
    output:
        stats="results/data/statistics.json",
        sheet="results/data/targets.txt",
    params:
        data=DATA,
        labels=LABELS,
    log:
        "results/logs/statistics.log",
    benchmark:
        "results/benchmarks/statistics.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/statistics.py"
