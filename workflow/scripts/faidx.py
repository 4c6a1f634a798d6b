from seqnn.data.fasta import index_fasta
from seqnn.log import logged

with logged(snakemake.log[0]):  # noqa: F821
    index_fasta(snakemake.input[0], snakemake.output[0])  # noqa: F821
