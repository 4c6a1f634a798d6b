from seqnn.log import logged
from seqnn.plots.report import workflow_plots

sm = snakemake  # noqa: F821
with logged(sm.log[0]):
    workflow_plots(
        dict(zip(sm.params.folds, sm.input.histories)), sm.input.summary,
        dict(zip(sm.params.folds, sm.input.examples)), sm.input.sequences,
        {name: sm.output[name] for name in sm.output.keys() if name != "other_formats"},
        formats=sm.params.formats, tracks=sm.params.tracks, n_loci=sm.params.n_loci,
        dpi=sm.params.dpi,
    )
