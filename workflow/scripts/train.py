import os

from seqnn.log import logged
from seqnn.train.gpus import claim_gpu

sm = snakemake  # noqa: F821
with logged(sm.log[0]), claim_gpu("results/.gpu_locks"):
    from seqnn.data.splits import Splits
    from seqnn.train.loop import train  # after claim_gpu set CUDA_VISIBLE_DEVICES

    train(
        sm.params.model, os.path.dirname(sm.input.stats), os.path.dirname(sm.output.best),
        splits=Splits(**sm.params.splits), threads=sm.threads, **sm.params.options,
    )
