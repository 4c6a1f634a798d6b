import os

from seqnn.data.demo import make_demo
from seqnn.log import logged

with logged(snakemake.log[0]) as log:  # noqa: F821
    summary = make_demo(os.path.dirname(snakemake.output.fasta), seed=snakemake.params.seed)  # noqa: F821, E501
    log.info("demo: %s", summary)
