import os

from seqnn.apply.evaluate import evaluate
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    evaluate(
        list(sm.input.models), os.path.dirname(sm.input.stats), os.path.dirname(sm.output.acc),
        split=sm.params.split, fai=sm.input.fai, tss=sm.input.tss[0] if sm.input.tss else None,
        threads=sm.threads, **sm.params.options,
    )
