# Config and track sheet validation, path helpers and input functions (no rules).

import os
import sys

import pandas as pd
import yaml
from snakemake.logging import logger
from snakemake.utils import validate

from seqnn import SeqnnError
from seqnn.config import (
    check,
    check_files,
    check_schema,
    check_sheet_schema,
    complete,
    path_folders,
    pretrained,
    resolve_paths,
    resolve_sheet_files,
    selections,
)
from seqnn.data.coverage import check_track, open_track
from seqnn.data.fetch import is_url
from seqnn.data.genome import chosen_chroms, fold_labels
from seqnn.data.fasta import fasta_sizes
from seqnn.data.selection import track_indices
from seqnn.data.targets import read_sheet
from seqnn.model.presets import preset_file, resolve_model
from seqnn.model.published import keras_meta, pretrained_geometry
from seqnn.train.gpus import count_gpus, job_threads
from seqnn.train.options import train_options


def fail(message):
    """Stop before any job with one line on stderr (a WorkflowError would add a traceback)."""
    print(message, file=sys.stderr)
    sys.exit(1)


# beside this file, wherever the workflow lives (a local folder, or a module from github)
SCHEMAS = {name: workflow.source_path(f"../schemas/{name}")
           for name in ("config.schema.yaml", "targets.schema.yaml")}


def schema(name):
    with open(SCHEMAS[name]) as f:
        return yaml.safe_load(f)


CONFIG_NAME = ", ".join(map(str, workflow.configfiles)) or "the config"
# the workflow's folder (Snakefile, config/), for relative paths found neither in the working
# directory nor beside the config file (the embedded demo's config/targets.tsv...)
WORKFLOW_DIR = os.path.join(str(workflow.current_basedir), "..", "..")
DEMO_DIR = "resources/demo"


def generated(path):
    """Whether a rule of this workflow makes `path` (so it need not exist yet)."""
    if is_url(path):
        return True
    return config["demo"] and os.path.dirname(os.path.normpath(path)) == DEMO_DIR


def resolve_inputs(resolve, *args, sheet=None):
    """Relative input paths (`seqnn.config.resolve_paths` or `resolve_sheet_files`) taken from
    the working directory, else the config file's folder, the sheet's, the workflow's; a line
    in the log for each found outside the working directory."""
    folders = path_folders(workflow.configfiles, WORKFLOW_DIR, sheet)
    for line in resolve(*args, folders, generated):
        logger.info(line)


# one line per violation first; then the schema fills every default (rules read the validated
# values directly)
try:
    check_schema(config, schema("config.schema.yaml"), CONFIG_NAME)
except SeqnnError as e:
    fail(str(e))
validate(config, "../schemas/config.schema.yaml")
resolve_inputs(resolve_paths, config)
# model: {pretrained: ...}: a published model imported once, no training; the data at its geometry
PRETRAINED = pretrained(config)
TRANSFER = config["transfer"]  # with model.pretrained: fine-tune it per fold instead
NO_TRAINING = bool(PRETRAINED) and TRANSFER is None
try:
    PRETRAINED_MODEL = PRETRAINED and pretrained_geometry(PRETRAINED, CONFIG_NAME)
    complete(config, CONFIG_NAME, PRETRAINED_MODEL)
    SHEET = read_sheet(config["targets"])
    check_sheet_schema(SHEET, schema("targets.schema.yaml"), config["targets"])
    resolve_inputs(resolve_sheet_files, SHEET, config["targets"], sheet=config["targets"])
    MODEL_SHEET = SHEET
    if NO_TRAINING and PRETRAINED_MODEL["format"] == "seqnn":  # the file carries its sheet
        MODEL_SHEET = pd.DataFrame(keras_meta(PRETRAINED["weights"])["targets"])
    elif NO_TRAINING:
        MODEL_SHEET = read_sheet(PRETRAINED["targets"])
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


def check_inputs():
    """The FASTA (names, lengths, duplicates), genome.chroms and each track's header or index
    against it, read once here so that mistakes stop the run before any job."""
    if generated(GENOME["fasta"]):
        return
    sizes = fasta_sizes(FASTA, "results/data/genome.fa.fai")
    chroms = chosen_chroms(FASTA, list(sizes), GENOME["chroms"])
    used = {c: sizes[c] for c in chroms if sizes[c] >= DATA["seq_length"]}
    if not used:
        fail(f"{FASTA}: no chromosome of genome.chroms has data.seq_length "
             f"({DATA['seq_length']:,}) bp; lower data.seq_length")
    for row in SHEET.to_dict("records"):
        if not generated(row["file"]):
            track = open_track(row["file"], row.get("bam_strand") or None, **config["bam"])
            check_track(track, used, GENOME["chrom_aliases"], DATA["negative"])


try:
    check(config, TRACKS, CONFIG_NAME)
    check_files(config, SHEET, CONFIG_NAME, generated)
    check_inputs()
    # rows of the model's sheet each step uses (predict: with strand partners under rc)
    SELECTED = selections(config, SHEET, MODEL_SHEET, CONFIG_NAME, track_indices,
                          PRETRAINED_MODEL)
except SeqnnError as e:
    fail(str(e))


def selected_ids(step):
    return [str(MODEL_SHEET.identifier[i]) for i in SELECTED[step]]


# config `model`: a params JSON path, a preset name, {preset: NAME, size: SIZE, KEY: VALUE}, or
# {pretrained: {...}} (no params file: rule import_model writes the model, fine-tuned per fold
# when `transfer` is given)
MODEL = config["model"]
MODEL_GIVEN = None if PRETRAINED else MODEL["preset"] if isinstance(MODEL, dict) else MODEL
try:  # the params as the train jobs resolve them (a missing file: the train rule's input)
    MODEL_FILE = None if PRETRAINED else str(preset_file(MODEL_GIVEN))
    if MODEL_FILE and os.path.exists(MODEL_FILE):
        geometry = {k: DATA[k] for k in ("seq_length", "pool_width", "crop_bp")}
        resolved = resolve_model({**MODEL, "preset": MODEL_FILE} if isinstance(MODEL, dict)
                                 else MODEL_FILE, data={**geometry, "num_targets": len(TRACKS)})
        train_options(resolved, where=MODEL_FILE)
except SeqnnError as e:
    fail(str(e) if str(e).startswith(MODEL_GIVEN) else f"{CONFIG_NAME}: {e}")
MODEL_FOLDS = list(range(DATA["folds"])) if DATA["folds"] else [0]
# the model downstream steps (or fine-tuning) start from: a seqnn .keras as it is, else imported
IMPORTED = bool(PRETRAINED) and PRETRAINED_MODEL["format"] != "seqnn"
PRETRAINED_FILE = (
    "results/models/pretrained/model.keras" if IMPORTED else PRETRAINED and PRETRAINED["weights"]
)


# Jobs of the GPU rules: one per GPU where there are GPUs; on a CPU-only local run a step's
# jobs share the cores (seqnn.train.gpus.job_threads). A cluster run (or a job it starts) keeps
# the configured threads.
GPUS = count_gpus()
LOCAL_CORES = (
    workflow._cores
    if workflow.local_exec and not (workflow.remote_exec or workflow.subprocess_exec)
    else None
)


def step_threads(section, jobs):
    """Threads of each of the `jobs` jobs of config section `section` (train, evaluate...)."""
    step = config[section]
    return job_threads(step["threads"], jobs, LOCAL_CORES, 1 if step["gpu"] else GPUS)


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
    """The models downstream steps use: the fold models, or the imported one."""
    if NO_TRAINING:
        return [PRETRAINED_FILE]
    return expand("results/models/f{fold}/model_best.keras", fold=MODEL_FOLDS)
