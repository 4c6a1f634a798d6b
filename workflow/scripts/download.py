from seqnn.data.fetch import download
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    digest = download(sm.params.url, sm.output[0], sm.params.sha256)
    log.info("%s -> %s (sha256 %s)", sm.params.url, sm.output[0], digest)
