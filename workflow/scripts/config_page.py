from seqnn.log import logged
from seqnn.plots.report import config_page

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    config_page(sm.params.config, sm.output[0])
