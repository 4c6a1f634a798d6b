# Config and track sheet validation, path helpers and input functions (no rules).

import os

from snakemake.utils import validate

from seqnn import SeqnnError
from seqnn.config import check, check_files, complete
from seqnn.data.fetch import is_url
from seqnn.data.genome import fold_labels
from seqnn.data.targets import read_sheet
from seqnn.model.presets import preset_file


def fail(message):
    """Stop before any job with one line."""
    raise WorkflowError(message)


CONFIG_NAME = ", ".join(map(str, workflow.configfiles)) or "the config"

# the schema fills every default; rules read the validated values directly
validate(config, "../schemas/config.schema.yaml")
complete(config)
try:
    SHEET = read_sheet(config["targets"])
except SeqnnError as e:
    fail(str(e))
validate(SHEET, "../schemas/targets.schema.yaml")

DATA = config["data"]
GENOME = config["genome"]
TRAIN = config["train"]
EVAL = config["evaluate"]
PLOTS_CONFIG = config["plots"]
PREDICT = config["predict"]
INTERPRET = config["interpret"]
LABELS = fold_labels(DATA["folds"])
TRACKS = list(SHEET.identifier)
DEMO_DIR = "resources/demo"


DOWNLOADS = "resources/downloads"


def local(path):
    """Where an input lives here: URLs are fetched into resources/downloads/ by `download`."""
    return f"{DOWNLOADS}/{os.path.basename(path.split('?')[0])}" if is_url(path) else path


# URL -> sha256 (or None) of every input given by URL
URLS = {GENOME["fasta"]: GENOME["fasta_sha256"]} if is_url(GENOME["fasta"]) else {}
for _row in SHEET.to_dict("records"):
    if is_url(_row["file"]):
        URLS[_row["file"]] = _row.get("sha256") if isinstance(_row.get("sha256"), str) else None
DOWNLOAD_URLS = {os.path.basename(local(u)): u for u in URLS}
FASTA = local(GENOME["fasta"])


def generated(path):
    """Whether a rule of this workflow makes `path` (so it need not exist yet)."""
    if is_url(path):
        return True
    return config["demo"] and os.path.dirname(os.path.normpath(path)) == DEMO_DIR


try:
    check(config, TRACKS, CONFIG_NAME)
    check_files(config, SHEET, CONFIG_NAME, generated)
except SeqnnError as e:
    fail(str(e))


# config `model`: a params JSON path, a preset name, {preset: NAME, size: SIZE, KEY: VALUE}, or
# {pretrained: {weights, params, format}} (fine-tuned with `transfer`)
MODEL = config["model"]
PRETRAINED = MODEL.get("pretrained") if isinstance(MODEL, dict) else None
TRANSFER = config["transfer"]
try:
    if PRETRAINED:
        MODEL_FILE = PRETRAINED["params"]
    else:
        MODEL_FILE = str(preset_file(MODEL["preset"] if isinstance(MODEL, dict) else MODEL))
except SeqnnError as e:
    fail(str(e))
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
