from seqnn.apply.gather import write_regions
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    write_regions(sm.input.shards, sm.input.bed[0], sm.output[0])
