from seqnn.log import logged
from seqnn.predict import write_bigwig

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    for kind, path in sm.output.items():
        write_bigwig(list(sm.input), sm.wildcards.track, path, variance=kind == "variance")
