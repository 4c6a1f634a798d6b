import os

from seqnn.log import logged
from seqnn.train.gpus import claim_gpu

sm = snakemake  # noqa: F821
with logged(sm.log[0]), claim_gpu("results/.gpu_locks"):
    from seqnn.data.records import read_statistics
    from seqnn.data.splits import Splits
    from seqnn.train.loop import train  # after claim_gpu set CUDA_VISIBLE_DEVICES
    from seqnn.train.transfer import pretrained_params

    data_dir, model, options = os.path.dirname(sm.input.stats), sm.params.model, sm.params.options
    if sm.params.transfer is not None:  # model.pretrained: fine-tune its weights (one head)
        model, trunk = pretrained_params(
            sm.input.weights, read_statistics(data_dir)["num_targets"], sm.params.transfer,
            params=model, head=options["head"] or 0)
        options = {**options, "head": None, "restore": sm.input.weights, "trunk": trunk}
    train(model, data_dir, os.path.dirname(sm.output.best), splits=Splits(**sm.params.splits),
          threads=sm.threads, **options)
