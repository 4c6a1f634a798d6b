from seqnn.log import logged
from seqnn.model.pretrained import import_model

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    log.info("import: %s", import_model(
        sm.input.weights, sm.output[0], params=sm.input.params[0] if sm.input.params else None,
        targets=sm.input.targets, head=sm.params.head, format=sm.params.format,
    ))
