"""What the workflow reads of a published model before anything is built (no TensorFlow): its
format, and the geometry (seq_length, pool_width, crop_bp, target_length) of a Basenji /
baskerville params file, of an enformer-pytorch config.json or of a seqnn `.keras` file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from seqnn import SeqnnError
from seqnn.model.params import head_lists, model_params, output_geometry
from seqnn.model.presets import load_params

FORMATS = ("baskerville", "enformer", "seqnn")
META_ENTRY = "seqnn.json"  # params, track sheet and statistics inside a seqnn .keras file
CONFIG = "config.json"
SEQUENCE_LENGTH = 196_608  # the port's input length

# EnformerConfig's defaults, for keys a config.json leaves out
PORT_DEFAULTS = {
    "dim": 1536,
    "depth": 11,
    "heads": 8,
    "output_heads": {"human": 5313, "mouse": 1643},
    "target_length": 896,
    "attn_dim_key": 64,
    "dropout_rate": 0.4,
    "attn_dropout": 0.05,
    "pos_dropout": 0.01,
    "num_downsamples": 7,
    "dim_divisible_by": 128,
    "use_tf_gamma": False,
}


def read_config(path) -> dict:
    """The port's config from `config.json`, with EnformerConfig's defaults filled in."""
    try:
        config = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise SeqnnError(f"{path}: invalid JSON ({err}); fix or re-download it") from None
    if not isinstance(config, dict) or config.get("model_type") != "enformer":
        found = config.get("model_type") if isinstance(config, dict) else None
        raise SeqnnError(
            f"{path}: not an enformer-pytorch config (model_type {found!r}, expected "
            "'enformer'); give the folder of an Enformer saved with save_pretrained"
        )
    config = {**PORT_DEFAULTS, **config}
    if config["num_downsamples"] < 3:
        raise SeqnnError(f"{path}: num_downsamples {config['num_downsamples']} < 3; the port "
                         "builds no conv tower below 3 (fix the config)")
    return config


def detect_format(weights) -> str:
    """`enformer` for a directory with config.json, `baskerville` for an .h5 / .hdf5 file,
    `seqnn` for a .keras file."""
    path = Path(weights)
    if path.suffix.lower() == ".keras":
        return "seqnn"
    if path.is_dir() and (path / CONFIG).is_file():
        return "enformer"
    if path.suffix.lower() in (".h5", ".hdf5"):
        return "baskerville"
    raise SeqnnError(
        f"{weights}: cannot tell its format; give --format baskerville (a Basenji/baskerville .h5) "
        "or --format enformer (a directory with config.json)"
    )


def enformer_geometry(config: dict, seq_length=None, where=CONFIG) -> dict:
    """Geometry of the port with `config` at `seq_length` (default 196,608 bp): bins of
    2^num_downsamples bp, cropped evenly to the config's target_length."""
    seq_length = SEQUENCE_LENGTH if seq_length is None else int(seq_length)
    pool_width = 2 ** config["num_downsamples"]
    bins, target = seq_length // pool_width, config["target_length"]
    if seq_length % pool_width:
        raise SeqnnError(f"{where}: seq_length {seq_length} is not a multiple of the "
                         f"{pool_width} bp bins; give a multiple")
    if target == -1:
        target = bins
    if target > bins or (bins - target) % 2:
        raise SeqnnError(
            f"{where}: seq_length {seq_length} gives {bins} bins, which the port cannot crop "
            f"evenly to target_length {target}; give a seq_length of (target_length + 2n) x "
            f"{pool_width} bp"
        )
    return {"seq_length": seq_length, "pool_width": pool_width,
            "crop_bp": (bins - target) // 2 * pool_width, "target_length": target}


def params_geometry(params) -> dict:
    """Geometry of the first head of a Basenji / baskerville params file (or dict)."""
    params = load_params(params) if isinstance(params, str | Path) else params
    seq_length = int(model_params(params)["seq_length"])
    bins, (_, jump) = output_geometry(params)
    pool = int(round(jump))
    return {"seq_length": seq_length, "pool_width": pool,
            "crop_bp": (seq_length - bins * pool) // 2, "target_length": bins}


def keras_meta(path) -> dict:
    """Params, track sheet and statistics a seqnn `.keras` file carries (read without Keras)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(META_ENTRY))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise SeqnnError(f"{path}: not a seqnn model file (no {META_ENTRY} inside); give a "
                         "model saved by seqnn train or seqnn import") from None


def published_geometry(weights, format: str, params=None, head: int = 0) -> dict:
    """Geometry of the model `seqnn import` makes of `weights` (`format` as `detect_format`),
    with its number of tracks (`tracks`) for `head`."""
    if format == "seqnn":
        stats = keras_meta(weights).get("statistics") or {}
        if not {"seq_length", "pool_width", "crop_bp", "target_length"} <= stats.keys():
            raise SeqnnError(f"{weights}: the model file carries no data geometry (statistics); "
                             "save it with seqnn train or seqnn import")
        return {**{k: stats[k] for k in ("seq_length", "pool_width", "crop_bp",
                                         "target_length")}, "tracks": stats["num_targets"]}
    if format == "enformer":
        config = read_config(Path(weights) / CONFIG)
        heads = list(dict(sorted(config["output_heads"].items())).values())
        return {**enformer_geometry(config), "tracks": heads[head] if head < len(heads) else None}
    params = load_params(params)
    heads = list(head_lists(model_params(params)).values())
    units = heads[head][-1].get("units") if head < len(heads) else None
    return {**params_geometry(params), "tracks": units}


def pretrained_geometry(block: dict, where: str) -> dict:
    """Geometry and track count of the published model that a workflow config's
    `model.pretrained` block names, its files checked first (`where`: the config's name)."""
    weights, fmt = block["weights"], block["format"]
    if not os.path.exists(weights):
        raise SeqnnError(f"{weights}: model.pretrained.weights not found; fix the path in {where} "
                         "(a Basenji/baskerville .h5 or an enformer-pytorch folder)")
    if fmt is not None and fmt not in FORMATS:
        raise SeqnnError(f"model.pretrained.format {fmt!r} in {where} is not a known format; use "
                         f"{' or '.join(FORMATS)} (or null: from the weights)")
    fmt = fmt or detect_format(weights)
    if fmt != "seqnn" and block["targets"] is None:
        raise SeqnnError(f"model.pretrained.targets: {fmt} weights need the head's targets file "
                         f"(it names the outputs); set it in {where}")
    for key, path in (("params", block["params"]), ("targets", block["targets"])):
        if key == "params" and fmt == "baskerville" and path is None:
            raise SeqnnError(f"model.pretrained.params: baskerville weights need the params JSON "
                             f"they were trained with; set it in {where}")
        if path is not None and not os.path.isfile(path):
            raise SeqnnError(f"{path}: model.pretrained.{key} file not found; fix the path in "
                             f"{where}")
    return {**published_geometry(weights, fmt, block["params"], block["head"]), "format": fmt}
