from seqnn.apply.predict import predict_shard
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    predict_shard(
        sm.input.models, sm.input.fasta, sm.output[0], fai=sm.input.fai,
        bed=sm.input.bed[0] if sm.input.bed else None,
        contigs=sm.input.contigs[0] if sm.input.contigs else None,
        shard=int(sm.wildcards.shard), shards=sm.params.shards,
        seq_length=sm.params.seq_length, aliases=sm.params.aliases, threads=sm.threads,
        **sm.params.options,
    )
