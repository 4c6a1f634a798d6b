from seqnn.data.bed import read_labelled_bed
from seqnn.data.records import statistics, write_json
from seqnn.data.targets import read_sheet, write_sheet
from seqnn.log import logged

sm = snakemake  # noqa: F821
with logged(sm.log[0]) as log:
    d = sm.params.data
    sheet = read_sheet(sm.input.sheet)
    stats = statistics(read_labelled_bed(sm.input.sequences), sm.params.labels, len(sheet),
                       d["pool_width"], d["crop_bp"])
    write_json(stats, sm.output.stats)
    write_sheet(sheet, sm.output.sheet)
    log.info("statistics: %s", stats)
