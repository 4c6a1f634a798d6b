from seqnn.apply.gather import tss_summary
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    tss_summary(sm.input.shards, sm.input.bed[0], sm.output[0], sm.params.window)
