from seqnn.log import logged
from seqnn.plots.interpret import workflow_plots

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    workflow_plots(
        sm.input.gradients[0] if sm.input.gradients else None,
        sm.input.ism[0] if sm.input.ism else None,
        sm.input.variants[0] if sm.input.variants else None,
        {name: sm.output[name] for name in sm.output.keys() if name != "other_formats"},
        formats=sm.params.formats, width=sm.params.width, tracks=sm.params.tracks,
        dpi=sm.params.dpi,
    )
