"""Build Basenji / baskerville models from params, and save or load them as one `.keras` file.

A params file has a `train` and a `model` block (Basenji's params.json); functions here take the
whole params or the `model` block alone. The model maps `sequence` `[batch, seq_length, 4]` to
`[batch, target_length, tracks]`, or to a list of those for several heads sharing one trunk.
Validation and `target_length` need no TensorFlow; building imports Keras.
"""

import json
import math
import numbers
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from seqnn import SeqnnError
from seqnn.blocks import (
    ACTIVATIONS,
    BLOCKS,
    INHERITED,
    KEY_DOCS,
    REQUIRED,
    reference_markdown,
    resolve,
)

# Model-level keys besides the block globals in blocks.INHERITED: key -> (default, meaning).
MODEL_KEYS = {
    "seq_length": (REQUIRED, "input length in bp"),
    "seq_depth": (4, "input channels (4: one-hot ACGT)"),
    "augment_rc": (False, "reverse-complement a random half of training sequences"),
    "augment_shift": (0, "shift training sequences by up to this many bp, padding with N"),
    "trunk": (REQUIRED, "list of blocks, shared by all heads"),
    "head": (None, "a block, a list of blocks, or a list of such lists (one head each)"),
    "head_<name>": (None, "one more head on the trunk; heads are ordered by natural key sort"),
    "batch_norm": (False, "legacy Basenji switch: true means `norm_type: batch`"),
    "target_length": (None, "ignored (a Basenji data setting)"),
    "ensemble_rc": (None, "ignored (a prediction setting)"),
    "ensemble_shifts": (None, "ignored (a prediction setting)"),
    "verbose": (None, "ignored"),
}
_GLOBAL_DOCS = {
    "activation": "activation, also applied once to the trunk output (relu if not given)",
}
_META_ENTRY = "seqnn.json"


@dataclass(frozen=True)
class Spec:
    """A validated model block: globals, resolved trunk blocks and heads."""

    seq_length: int
    seq_depth: int
    augment_rc: bool
    augment_shift: int
    activation: str
    trunk: list
    heads: dict


def load_params(path) -> dict:
    """Read a params JSON file; errors name the file."""
    path = Path(path)
    try:
        params = json.loads(path.read_text())
    except FileNotFoundError:
        raise SeqnnError(f"{path}: params file not found; check the path") from None
    except json.JSONDecodeError as err:
        raise SeqnnError(f"{path}: invalid JSON ({err}); fix the file") from None
    if not isinstance(params, dict) or not isinstance(params.get("model", params), dict):
        raise SeqnnError(f"{path}: expected a JSON object with a 'model' block")
    return params


def model_params(params: dict) -> dict:
    """The `model` block of `params`, or `params` itself when it is a bare model block."""
    return params["model"] if "model" in params else params


def _natural_key(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _head_lists(mp):
    """Heads as `{name: [block, ...]}` from `head` and `head_<name>` keys."""
    heads = {}
    for key in sorted((k for k in mp if k.startswith("head")), key=_natural_key):
        value = mp[key]
        if isinstance(value, dict):
            heads[key] = [value]
        elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            heads.update({f"{key}{i}": blocks for i, blocks in enumerate(value)})
        elif isinstance(value, list) and value:
            heads[key] = value
        else:
            raise SeqnnError(f"model.{key}: expected a block, a list of blocks or a list of heads")
    return heads


def parse_params(params: dict) -> Spec:
    """Validate params (whole file or model block) and resolve every block's keys."""
    mp = model_params(params)
    unknown = [
        k for k in mp if k not in MODEL_KEYS and k not in INHERITED and not k.startswith("head_")
    ]
    if unknown:
        valid = ", ".join([*MODEL_KEYS, *INHERITED])
        raise SeqnnError(f"model: unknown key {unknown[0]!r}; valid keys: {valid}")
    for key in ("seq_length", "trunk"):
        if key not in mp:
            raise SeqnnError(f"model: missing required key {key!r}")
    if not isinstance(mp["trunk"], list):
        raise SeqnnError("model.trunk: expected a list of blocks")
    model_globals = {k: mp.get(k) for k in INHERITED}
    if model_globals["norm_type"] is None and mp.get("batch_norm"):
        model_globals["norm_type"] = "batch"
    heads = _head_lists(mp)
    if not heads:
        raise SeqnnError('model: no head; add e.g. "head": {"name": "final", "units": N}')
    shift = mp.get("augment_shift", 0)
    if isinstance(shift, list):  # Basenji's old default [0]
        shift = max((abs(s) for s in shift), default=0)
    spec = Spec(
        seq_length=int(mp["seq_length"]),
        seq_depth=int(mp.get("seq_depth", 4)),
        augment_rc=bool(mp.get("augment_rc", False)),
        augment_shift=int(shift),
        activation=mp.get("activation") or "relu",
        trunk=[resolve(b, model_globals, f"model.trunk[{i}]") for i, b in enumerate(mp["trunk"])],
        heads={
            name: [resolve(b, model_globals, f"model.{name}[{i}]") for i, b in enumerate(blocks)]
            for name, blocks in heads.items()
        },
    )
    if spec.activation not in ACTIVATIONS:
        valid = ", ".join(ACTIVATIONS)
        raise SeqnnError(f"model: activation {spec.activation!r} is not one of {valid}")
    if spec.augment_rc and spec.seq_depth != 4:
        raise SeqnnError("model: augment_rc needs seq_depth 4 (one-hot ACGT)")
    return spec


def target_length(params: dict) -> int:
    """Output length in bins of the first head, computed from the blocks without building."""
    spec = parse_params(params)
    length = spec.seq_length
    for name, p in spec.trunk + next(iter(spec.heads.values())):
        length = BLOCKS[name].length(length, p)
    if length < 1:
        raise SeqnnError(f"model: seq_length {spec.seq_length} leaves {length} bins; crop less")
    return length


def _strand_pairs(strand_pair, heads):
    """One strand-pair list (or None) per head."""
    if strand_pair is None:
        return [None] * len(heads)
    if all(isinstance(t, numbers.Integral) for t in strand_pair):
        if len(heads) > 1:
            raise SeqnnError("strand_pair: the model has several heads; give one list per head")
        return [[int(t) for t in strand_pair]]
    if len(strand_pair) != len(heads):
        raise SeqnnError(f"strand_pair: {len(strand_pair)} lists for {len(heads)} heads")
    return [None if sp is None else [int(t) for t in sp] for sp in strand_pair]


def _check_strand_pair(pair, tracks, head):
    if len(pair) != tracks or any(not 0 <= t < tracks or pair[t] != i for i, t in enumerate(pair)):
        raise SeqnnError(
            f"strand_pair for {head}: need {tracks} indices where track t's pair's pair is t, "
            f"got {pair}"
        )


def build_model(params: dict, strand_pair=None):
    """Build the Keras model described by `params` (whole params or the `model` block).

    `strand_pair` lists, for each output track, the index of its opposite-strand track (its own
    index when unstranded); with several heads give one list per head. It is used to swap
    stranded tracks when `augment_rc` reverse-complements a training sequence.
    """
    import keras

    from seqnn import layers

    spec = parse_params(params)
    pairs = _strand_pairs(strand_pair, spec.heads)
    sequence = keras.Input((spec.seq_length, spec.seq_depth), name="sequence", dtype="float32")
    x = sequence
    if spec.augment_rc:
        x, reverse = layers.StochasticReverseComplement()(x)
    if spec.augment_shift:
        x = layers.StochasticShift(spec.augment_shift)(x)

    reprs = []
    for name, p in spec.trunk:
        x = BLOCKS[name].build(x, p, reprs)
        reprs.append(x)
    if spec.activation != "linear":
        x = layers.Activate(spec.activation)(x)
    trunk = x

    outputs = []
    for (head, blocks), pair in zip(spec.heads.items(), pairs):
        x = trunk
        for name, p in blocks:
            x = BLOCKS[name].build(x, p, reprs)
        if pair is not None:
            _check_strand_pair(pair, x.shape[-1], head)
        if spec.augment_rc:
            x = layers.SwitchReverse(pair)([x, reverse])
        # named after the head; float32 even under mixed precision
        outputs.append(keras.layers.Identity(name=head, dtype="float32")(x))
    return keras.Model(sequence, outputs[0] if len(outputs) == 1 else outputs, name="seqnn")


def model_summary(params: dict) -> dict:
    """Output shape(s) and parameter counts of the model `params` builds."""
    model = build_model(params)
    shapes = [tuple(o.shape) for o in model.outputs]
    return {
        "output_shape": shapes[0] if len(shapes) == 1 else shapes,
        "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights),
        "non_trainable_params": sum(math.prod(w.shape) for w in model.non_trainable_weights),
    }


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save_model(model, path, params=None, targets=None, statistics=None):
    """Save `model` to a `.keras` file that also carries params, targets and data statistics.

    `targets` is the track sheet as a list of row dicts (or a DataFrame). The file is written
    under a temporary name and renamed, so a killed job leaves no finished-looking file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise SeqnnError(f"{path}: model files must end in .keras")
    if hasattr(targets, "to_dict"):
        targets = targets.to_dict("records")
    meta = {"params": params, "targets": targets, "statistics": statistics}
    text = json.dumps(meta, default=_jsonable)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(_META_ENTRY, text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_model(path):
    """Load a model saved by `save_model`: returns `(model, meta)`.

    `meta` has `params`, `targets` and `statistics` (None where they were not saved).
    """
    import keras

    from seqnn import layers  # noqa: F401  (registers the custom layers)

    path = Path(path)
    if not path.is_file():
        raise SeqnnError(f"{path}: model file not found; train the model or check the path")
    model = keras.saving.load_model(path, compile=False)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        meta = json.loads(archive.read(_META_ENTRY)) if _META_ENTRY in names else {}
    return model, {key: meta.get(key) for key in ("params", "targets", "statistics")}


def params_reference() -> str:
    """Markdown reference of model-level keys and every block (config/models/README.md)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, (default, meaning) in MODEL_KEYS.items():
        shown = "required" if default == REQUIRED else f"`{json.dumps(default)}`"
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    for key in INHERITED:
        meaning = _GLOBAL_DOCS.get(key, KEY_DOCS[key])
        rows.append(f"| `{key}` | per block | {meaning}; if given, the default of every block |")
    return "\n".join(["## Model keys", "", *rows, "", "## Blocks", "", reference_markdown()])
