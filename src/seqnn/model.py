"""Build Basenji / baskerville models from params, and save or load them as one `.keras` file.

A params file has a `train` and a `model` block (Basenji's params.json); functions here take the
whole params or the `model` block alone. The model maps `sequence` `[batch, seq_length, 4]` to
`[batch, target_length, tracks]`, or to a list of those for several heads sharing one trunk.
A preset (config/models/NAME.json with a `scale` block) is a params file whose values may be
expressions over scale keys such as `width` and `depth`; `resolve_model` evaluates them.
Validation, `target_length`, `receptive_field` and presets need no TensorFlow; building imports
Keras.
"""

import ast
import json
import math
import numbers
import operator
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

PRESET_DIR = Path(__file__).resolve().parents[2] / "config" / "models"
# Preset scale keys that describe the data, and their names in statistics.json
DATA_KEYS = {
    "seq_length": "seq_length",
    "pool_width": "pool_width",
    "crop_bp": "crop_bp",
    "tracks": "num_targets",
}


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
    """Read a params JSON file (a preset file at its default size); errors name the file."""
    return resolve_model(Path(path))


def _read_params(path: Path) -> dict:
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


def _geometry(params):
    """Output bins of the first head and their receptive field `(size, jump)` in bp."""
    spec = parse_params(params)
    length, field = spec.seq_length, (1, 1)
    for name, p in spec.trunk + next(iter(spec.heads.values())):
        field = BLOCKS[name].receptive(field, p, length)
        length = BLOCKS[name].length(length, p)
    if length < 1:
        raise SeqnnError(f"model: seq_length {spec.seq_length} leaves {length} bins; crop less")
    return length, field


def target_length(params: dict) -> int:
    """Output length in bins of the first head, computed from the blocks without building."""
    return _geometry(params)[0]


def receptive_field(params: dict) -> int | None:
    """Input bp one output bin of the first head depends on (it may exceed seq_length); None
    where attention, recurrence or flattening lets every bin see the whole input."""
    size = _geometry(params)[1][0]
    return None if math.isinf(size) else math.ceil(size)


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
    """Output shape(s) and parameter counts of the model `params` builds.

    Its weights are never initialised (a Keras stateless scope defers them, then the deferred
    list is restored), so a published-size model takes about a second and little memory.
    """
    import keras
    from keras.src.backend.common import global_state

    pending = list(global_state.get_global_attribute("uninitialized_variables", None) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = build_model(params)
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)
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


# ---------------------------------------------------------------------------------------------
# Presets


def _log2(n):
    if not isinstance(n, int) or n < 1 or n & (n - 1):
        raise ValueError(f"{n!r} is not a power of 2")
    return n.bit_length() - 1


_FUNCTIONS = {"log2": _log2, "min": min, "max": max, "round": round}
_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


def _evaluate(node, names):
    """Value of an expression node: numbers, names, + - * / // % **, lists, `_FUNCTIONS`."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise ValueError(f"unknown name {node.id!r} (names: {', '.join(names)})")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left, names), _evaluate(node.right, names))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand, names))
    if isinstance(node, ast.List):
        return [_evaluate(e, names) for e in node.elts]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(a, names) for a in node.args))
    raise ValueError(f"{ast.unparse(node)!r} is not allowed")


def _substitute(value, names, where):
    """`value` with every string `"=EXPRESSION"` in it evaluated over `names`."""
    if isinstance(value, dict):
        return {k: _substitute(v, names, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, names, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith("="):
        try:
            return _evaluate(ast.parse(value[1:], mode="eval").body, names)
        except (SyntaxError, ValueError, TypeError, ZeroDivisionError) as err:
            raise SeqnnError(f"{where}: cannot evaluate {value!r}: {err}") from None
    return value


def presets(preset_dir=PRESET_DIR) -> list[str]:
    """Names of the presets in `preset_dir` (params files with a `scale` block)."""
    return sorted(
        p.stem for p in Path(preset_dir).glob("*.json") if "scale" in json.loads(p.read_text())
    )


def preset_file(name_or_path, preset_dir=PRESET_DIR) -> Path:
    """The params file of a preset name (`preset_dir`/NAME.json) or a params JSON path."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix == ".json" or len(path.parts) > 1:
        return path
    path = Path(preset_dir) / f"{name_or_path}.json"
    if not path.is_file():
        raise SeqnnError(
            f"model: no preset {name_or_path!r}; presets: {', '.join(presets(preset_dir))} "
            "(or give a params JSON path)"
        )
    return path


def _check_data(params, data, where):
    """Fail unless the model's input and output lengths fit `data` (statistics.json keys)."""
    mp = model_params(params)
    if "seq_length" in data and mp["seq_length"] != data["seq_length"]:
        raise SeqnnError(
            f"{where}: model seq_length {mp['seq_length']} does not match the data's "
            f"seq_length {data['seq_length']}"
        )
    expected = data.get("target_length")
    if expected is None and {"seq_length", "crop_bp", "pool_width"} <= data.keys():
        expected = (data["seq_length"] - 2 * data["crop_bp"]) // data["pool_width"]
    bins = target_length(params)
    if expected is not None and bins != expected:
        raise SeqnnError(
            f"{where}: the model outputs {bins} bins, not the data's {expected}; change its "
            "pooling or cropping to fit seq_length, pool_width and crop_bp"
        )


def resolve_model(model, *, size=None, data=None, **scale) -> dict:
    """Params (`train` and `model` blocks) of a preset or params file, ready to build.

    `model` is a preset name (`preset_file`), a params JSON path, or a mapping
    `{"preset": NAME_OR_PATH, "size": SIZE, SCALE_KEY: VALUE, ...}` (config.yaml's `model`).
    A preset's values written `"=EXPRESSION"` are evaluated over its scale keys, taken from its
    `scale` block, then its named `size` (`sizes` block), then `data`, then `scale`;
    `target_length` is also defined. `data` holds statistics.json keys (or the config's data
    block with `num_targets`): the preset takes its seq_length, pool_width, crop_bp and tracks
    from it, and any model must fit its lengths. A preset with a mapping `tracks`
    (`{"human": 5313, ...}`) gets one head per entry, `head_human`, ...
    """
    if isinstance(model, dict):
        if "preset" not in model:
            raise SeqnnError("model: a mapping needs a 'preset' key (a preset name or file)")
        scale = {k: v for k, v in model.items() if k not in ("preset", "size")} | scale
        size = model.get("size", size)
        model = model["preset"]
    path = preset_file(model)
    params = _read_params(path)
    data = data or {}
    if "scale" not in params:
        if size is not None or scale:
            given = ", ".join(["size"] * (size is not None) + list(scale))
            raise SeqnnError(f"{path}: not a preset (no 'scale' block); drop {given}")
        if data:
            _check_data(params, data, path)
        return params
    values = dict(params["scale"])
    if size is not None:
        sizes = params.get("sizes", {})
        if size not in sizes:
            raise SeqnnError(f"{path}: no size {size!r}; sizes: {', '.join(sizes) or 'none'}")
        values.update(sizes[size])
    unknown = [k for k in scale if k not in values]
    if unknown:
        raise SeqnnError(
            f"{path}: unknown scale key {unknown[0]!r}; scale keys: {', '.join(values)}"
        )
    for key, data_key in DATA_KEYS.items():
        if key in values and data_key in data:
            if key in scale and scale[key] != data[data_key]:
                raise SeqnnError(
                    f"model: {key} {scale[key]!r} differs from the data's {data_key} "
                    f"{data[data_key]!r}; leave it out (presets take it from the data)"
                )
            values[key] = data[data_key]
    values.update(scale)
    names = dict(values)
    if {"seq_length", "crop_bp", "pool_width"} <= names.keys():
        names["target_length"] = (
            values["seq_length"] - 2 * values["crop_bp"]
        ) // values["pool_width"]
    where = f"preset {path.stem}"
    body = dict(params["model"])
    if isinstance(values.get("tracks"), dict):
        head = body.pop("head")
        for name, units in values["tracks"].items():
            body[f"head_{name}"] = _substitute(head, {**names, "tracks": units}, f"{where}: head")
    resolved = {
        "preset": {"name": path.stem, "size": size, "scale": values},
        "train": _substitute(params.get("train", {}), names, f"{where}: train"),
        "model": _substitute(body, names, f"{where}: model"),
    }
    geometry = {DATA_KEYS[k]: values[k] for k in DATA_KEYS if k in values}
    _check_data(resolved, {**data, **geometry}, where)
    return resolved


def preset_summary(name: str, size: str | None = None) -> dict:
    """Geometry and parameter counts of preset `name` at `size` (builds it with Keras)."""
    params = resolve_model(name, size=size)
    scale = params["preset"]["scale"]
    return {
        "preset": name,
        "size": size or "default",
        "scale": {k: v for k, v in scale.items() if k not in DATA_KEYS},
        "seq_length": scale["seq_length"],
        "bin_width": scale["pool_width"],
        "target_length": target_length(params),
        "receptive_field": receptive_field(params),
        **model_summary(params),
    }


def presets_markdown(summaries: list[dict]) -> str:
    """Markdown table of `preset_summary` results (embedded in config/models/README.md)."""
    rows = [
        "| preset | size | scale | input bp | output | receptive field | trainable params |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        shapes = s["output_shape"] if isinstance(s["output_shape"], list) else [s["output_shape"]]
        tracks = " + ".join(str(shape[2]) for shape in shapes)
        field = "whole input" if s["receptive_field"] is None else f"{s['receptive_field']:,} bp"
        scale = ", ".join(f"{k} {v}" for k, v in s["scale"].items())
        rows.append(
            f"| `{s['preset']}` | {s['size']} | {scale} | {s['seq_length']:,} | "
            f"{s['target_length']:,} x {s['bin_width']} bp, {tracks} tracks | {field} | "
            f"{s['trainable_params']:,} |"
        )
    return "\n".join(rows)


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
