import os

from seqnn.data.bed import read_labelled_bed
from seqnn.data.records import write_split
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    out_dir = os.path.dirname(sm.output[0])
    write_split(
        sm.input.fasta, sm.input.fai, read_labelled_bed(sm.input.sequences), sm.input.coverage,
        out_dir, sm.wildcards.label, sm.params.seqs_per_tfr, index=sm.output[0],
    )
