import os

from seqnn.gpus import claim_gpu
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]), claim_gpu("results/.gpu_locks"):
    from seqnn.train import Splits, train  # after claim_gpu set CUDA_VISIBLE_DEVICES

    train(
        sm.params.model, os.path.dirname(sm.input.stats), os.path.dirname(sm.output.best),
        splits=Splits(**sm.params.splits), threads=sm.threads, **sm.params.options,
    )
