from seqnn.apply.interpret import ism
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    ism(
        sm.input.models, sm.input.fasta, sm.input.bed[0], sm.output[0], fai=sm.input.fai,
        window_bp=sm.params.window_bp, batch_size=sm.params.batch_size, threads=sm.threads,
        **sm.params.options,
    )
