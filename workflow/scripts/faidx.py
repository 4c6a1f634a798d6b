import pysam

from seqnn.io import atomic_path
from seqnn.log import logged

with logged(snakemake.log[0]), atomic_path(snakemake.output[0]) as tmp:  # noqa: F821
    pysam.faidx(snakemake.input[0], "--fai-idx", tmp)  # noqa: F821
