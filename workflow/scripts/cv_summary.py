from seqnn.apply.accuracy import cv_summary
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    cv_summary(dict(zip(sm.params.folds, sm.input.folds)),
               dict(zip(sm.params.folds, sm.input.ensemble)), sm.output[0])
