import os

from seqnn.apply.interpret import gradient_maps
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    gradient_maps(
        sm.input.models, sm.input.fasta, sm.input.bed[0], sm.output.h5, fai=sm.input.fai,
        bigwig_dir=os.path.dirname(sm.output.bigwigs[0]), batch_size=sm.params.batch_size,
        threads=sm.threads, **sm.params.options, **sm.params.gradient,
    )
