from seqnn.data.fasta import chrom_sizes
from seqnn.data.genome import write_sequences
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    d = sm.params.data
    seqs = write_sequences(
        sm.input.contigs, sm.output[0], d["seq_length"], d["folds"], d["stride_train"],
        d["stride_test"], chrom_sizes(sm.input.fasta, sm.input.fai),
        unmappable=sm.input.unmappable[0] if sm.input.unmappable else None,
        unmappable_max_frac=d["unmappable_max_frac"],
    )
    log.info("sequences per label: %s", seqs.label.value_counts(sort=False).to_dict())
