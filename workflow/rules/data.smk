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
    params:
        seed=config.get("demo_seed", 7),
    log:
        "results/logs/demo.log",
    benchmark:
        "results/benchmarks/demo.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/demo.py"


rule faidx:
    input:
        GENOME["fasta"],
    output:
        "results/data/genome.fa.fai",
    log:
        "results/logs/faidx.log",
    benchmark:
        "results/benchmarks/faidx.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/faidx.py"


rule contigs:
    input:
        fasta=GENOME["fasta"],
        fai="results/data/genome.fa.fai",
        gaps=optional(GENOME.get("gaps")),
    output:
        "results/data/contigs.bed",
    params:
        data=DATA,
        chroms=GENOME.get("chroms"),
    log:
        "results/logs/contigs.log",
    benchmark:
        "results/benchmarks/contigs.tsv"
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/contigs.py"


rule sequences:
    input:
        contigs="results/data/contigs.bed",
        fasta=GENOME["fasta"],
        fai="results/data/genome.fa.fai",
        unmappable=optional(GENOME.get("unmappable")),
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
    script:
        "../scripts/sequences.py"


rule coverage:
    input:
        sequences="results/data/sequences.bed",
        fasta=GENOME["fasta"],
        fai="results/data/genome.fa.fai",
        track=track_file,
        blacklist=optional(GENOME.get("blacklist")),
        unmappable=optional(GENOME.get("unmappable")),
    output:
        "results/data/coverage/{track}.h5",
    params:
        row=track_row,
        data=DATA,
        aliases=GENOME.get("chrom_aliases", {}),
        bam=config.get("bam", {}),
    log:
        "results/logs/coverage/{track}.log",
    benchmark:
        "results/benchmarks/coverage/{track}.tsv"
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../scripts/coverage.py"


rule tfrecords:
    input:
        sequences="results/data/sequences.bed",
        fasta=GENOME["fasta"],
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
    script:
        "../scripts/statistics.py"
