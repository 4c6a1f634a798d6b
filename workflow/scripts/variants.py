from seqnn.apply.variants import score_vcf
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    score_vcf(
        sm.input.models, sm.input.fasta, sm.input.vcf[0], sm.output[0], fai=sm.input.fai,
        rc=sm.params.rc, shifts=sm.params.shifts, head=sm.params.head,
        tracks=sm.params.tracks, sum_tracks=sm.params.sum_tracks,
        aliases=sm.params.aliases, batch_size=sm.params.batch_size, threads=sm.threads,
    )
