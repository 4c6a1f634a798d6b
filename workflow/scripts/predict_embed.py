from seqnn.apply.predict import write_embeddings
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    write_embeddings(
        sm.input.model, sm.input.fasta, sm.input.bed[0], sm.output[0], fai=sm.input.fai,
        layer=sm.params.layer, batch_size=sm.params.batch_size, aliases=sm.params.aliases,
        threads=sm.threads, jit_compile=sm.params.jit_compile,
    )
