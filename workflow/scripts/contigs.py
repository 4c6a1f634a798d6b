from seqnn.data.genome import write_contigs
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    d = sm.params.data
    contigs = write_contigs(
        sm.input.fasta, sm.output[0], d["seq_length"], d["folds"], d["seed"], fai=sm.input.fai,
        chroms=sm.params.chroms, min_gap=d["min_gap"], break_length=d["break_length"],
        gaps=sm.input.gaps[0] if sm.input.gaps else None, valid_frac=d["valid_frac"],
        test_frac=d["test_frac"],
    )
    size = (contigs.end - contigs.start).groupby(contigs.label).sum()
    log.info("contigs: %d; bp per label: %s", len(contigs), size.to_dict())
