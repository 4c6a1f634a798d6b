from seqnn.apply.gather import write_bigwig
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    for kind, path in sm.output.items():
        write_bigwig(list(sm.input), sm.wildcards.track, path, variance=kind == "variance")
