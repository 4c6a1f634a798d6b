# Config and track sheet validation, path helpers and input functions (no rules).

import os

from snakemake.utils import validate

from seqnn import SeqnnError
from seqnn.config import check_data
from seqnn.genome import fold_labels
from seqnn.targets import read_sheet


def fail(message):
    """Stop before any job with one line."""
    raise WorkflowError(message)


validate(config, "../schemas/config.schema.yaml")
try:
    check_data(config["data"], "config.yaml")
    SHEET = read_sheet(config["targets"])
except SeqnnError as e:
    fail(str(e))
validate(SHEET, "../schemas/targets.schema.yaml")

DATA = config["data"]
GENOME = config["genome"]
LABELS = fold_labels(DATA["folds"])
TRACKS = list(SHEET.identifier)
DEMO_DIR = "resources/demo"


def generated(path):
    """Whether a rule of this workflow makes `path` (so it need not exist yet)."""
    return config.get("demo", False) and os.path.dirname(os.path.normpath(path)) == DEMO_DIR


for _path in [GENOME["fasta"], *SHEET.file]:
    if not generated(_path) and not os.path.isfile(_path):
        fail(f"{_path}: file not found (from {config['targets']} or genome.fasta); fix the path")
for _key in ("gaps", "blacklist", "unmappable"):
    if GENOME.get(_key) and not os.path.isfile(GENOME[_key]):
        fail(f"{GENOME[_key]}: genome.{_key} file not found; fix the path or set it to null")


def track_row(wildcards):
    return SHEET.set_index("identifier").loc[wildcards.track].to_dict()


def track_file(wildcards):
    return track_row(wildcards)["file"]


def optional(path):
    return [path] if path else []


def data_outputs():
    return ["results/data/statistics.json", "results/data/targets.txt"] + expand(
        "results/data/tfrecords/{label}.json", label=LABELS
    )
