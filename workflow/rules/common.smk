# Config and track sheet validation, path helpers and input functions (no rules).

import os

from snakemake.utils import validate

from seqnn import SeqnnError
from seqnn.config import check_data
from seqnn.data.fetch import is_url
from seqnn.data.genome import fold_labels
from seqnn.model.presets import preset_file
from seqnn.data.targets import read_sheet


def fail(message):
    """Stop before any job with one line."""
    raise WorkflowError(message)


CONFIG_NAME = ", ".join(map(str, workflow.configfiles)) or "the config"

validate(config, "../schemas/config.schema.yaml")
try:
    check_data(config["data"], CONFIG_NAME)
    SHEET = read_sheet(config["targets"])
except SeqnnError as e:
    fail(str(e))
validate(SHEET, "../schemas/targets.schema.yaml")

DATA = config["data"]
DATA.setdefault("stride_test", DATA["seq_length"])  # as Basenji: test windows do not overlap
GENOME = config["genome"]
LABELS = fold_labels(DATA["folds"])
TRACKS = list(SHEET.identifier)
DEMO_DIR = "resources/demo"


DOWNLOADS = "resources/downloads"


def local(path):
    """Where an input lives here: URLs are fetched into resources/downloads/ by `download`."""
    return f"{DOWNLOADS}/{os.path.basename(path.split('?')[0])}" if is_url(path) else path


# URL -> sha256 (or None) of every input given by URL
URLS = {GENOME["fasta"]: GENOME.get("fasta_sha256")} if is_url(GENOME["fasta"]) else {}
for _row in SHEET.to_dict("records"):
    if is_url(_row["file"]):
        URLS[_row["file"]] = _row.get("sha256") if isinstance(_row.get("sha256"), str) else None
DOWNLOAD_URLS = {os.path.basename(local(u)): u for u in URLS}
FASTA = local(GENOME["fasta"])


def generated(path):
    """Whether a rule of this workflow makes `path` (so it need not exist yet)."""
    if is_url(path):
        return True
    return config.get("demo", False) and os.path.dirname(os.path.normpath(path)) == DEMO_DIR


for _what, _path, _fix in [
    ("genome.fasta", GENOME["fasta"], f"fix genome.fasta in {CONFIG_NAME}"),
    *(
        (f"track {i}", p, f"fix its file in {config['targets']}")
        for i, p in zip(SHEET.identifier, SHEET.file)
    ),
]:
    if not generated(_path) and not (os.path.isfile(_path) and os.access(_path, os.R_OK)):
        _rel = "" if os.path.isabs(_path) else f" (relative to {os.getcwd()})"
        fail(f"{_path}: {_what} file not found or unreadable{_rel}; {_fix}")
for _key in ("gaps", "blacklist", "unmappable"):
    if GENOME.get(_key) and not os.path.isfile(GENOME[_key]):
        fail(f"{GENOME[_key]}: genome.{_key} file not found; fix the path or set it to null")


# config `model`: a params JSON path, a preset name, or {preset: NAME, size: SIZE, KEY: VALUE}
MODEL = config.get("model", "config/models/demo.json")
try:
    MODEL_FILE = str(preset_file(MODEL["preset"] if isinstance(MODEL, dict) else MODEL))
except SeqnnError as e:
    fail(str(e))
TRAIN = config.get("train", {})
MODEL_FOLDS = list(range(DATA["folds"])) if DATA["folds"] else [0]


def track_row(wildcards):
    return SHEET.set_index("identifier").loc[wildcards.track].to_dict()


def track_file(wildcards):
    return local(track_row(wildcards)["file"])


def optional(path):
    return [path] if path else []


def data_outputs():
    return ["results/data/statistics.json", "results/data/targets.txt"] + expand(
        "results/data/tfrecords/{label}.json", label=LABELS
    )


def model_outputs():
    return expand("results/models/f{fold}/model_best.keras", fold=MODEL_FOLDS)
