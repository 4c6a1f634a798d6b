from seqnn.data.coverage import write_coverage
from seqnn.data.fasta import chrom_sizes
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    d = sm.params.data
    targets = write_coverage(
        sm.params.row, sm.input.sequences, sm.output[0], chrom_sizes(sm.input.fasta, sm.input.fai),
        d["pool_width"], d["crop_bp"], chrom_aliases=sm.params.aliases, nan_value=d["nan_value"],
        negative=d["negative"], blacklist=sm.input.blacklist[0] if sm.input.blacklist else None,
        unmappable=sm.input.unmappable[0] if sm.input.unmappable else None, bam=sm.params.bam,
    )
    log.info("%s: %d sequences x %d bins, mean %.4g, max %.4g", sm.wildcards.track,
             *targets.shape, targets.mean(dtype="float64"), targets.max())
