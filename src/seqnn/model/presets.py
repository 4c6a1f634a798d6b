"""Presets: params files whose values are expressions over a few scale keys.

A preset (`presets/NAME.json`, shipped with the package, with a `scale` block) is a params file
whose values may be `"=EXPRESSION"` over scale keys such as `width` and `depth`;
`resolve_model` evaluates them, fitting the geometry to a data directory's statistics where
given. No Keras here (`seqnn.model.build.preset_summary` builds one to count parameters).
"""

import ast
import json
import operator
from pathlib import Path

from seqnn import SeqnnError
from seqnn.io import names_params_file
from seqnn.model.keys import Kind
from seqnn.model.params import model_params, target_length

PRESET_DIR = Path(__file__).resolve().parent / "presets"


# Preset scale keys that describe the data, and their names in statistics.json
DATA_KEYS = {
    "seq_length": "seq_length",
    "pool_width": "pool_width",
    "crop_bp": "crop_bp",
    "tracks": "num_targets",
}



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
    if names_params_file(name_or_path):
        return Path(name_or_path)
    path = Path(preset_dir) / f"{name_or_path}.json"
    if not path.is_file():
        raise SeqnnError(
            f"model: no preset {name_or_path!r}; presets: {', '.join(presets(preset_dir))} "
            "(or give a params JSON path)"
        )
    return path



def _check_data(params, data, where):
    """Fail unless the params are valid (`parse_params`) and the model's input and output
    lengths fit `data` (statistics.json keys); errors name `where`."""
    try:
        _check_lengths(params, data, where)
    except SeqnnError as err:
        text = str(err)
        raise SeqnnError(text if text.startswith(str(where)) else f"{where}: {text}") from None


def _check_lengths(params, data, where):
    bins = target_length(params)
    mp = model_params(params)
    if "seq_length" in data and mp["seq_length"] != data["seq_length"]:
        raise SeqnnError(
            f"{where}: model seq_length {mp['seq_length']} does not match the data's "
            f"seq_length {data['seq_length']}; make them equal"
        )
    expected = data.get("target_length")
    if expected is None and {"seq_length", "crop_bp", "pool_width"} <= data.keys():
        expected = (data["seq_length"] - 2 * data["crop_bp"]) // data["pool_width"]
    if expected is not None and bins != expected:
        raise SeqnnError(
            f"{where}: the model outputs {bins} bins, not the data's {expected}; change its "
            "pooling or cropping to fit seq_length, pool_width and crop_bp"
        )



def _scale_values(params, path, size, data, scale) -> dict:
    """A preset's scale keys: its `scale` block, then the named `size`, `data`, then `scale`."""
    values = dict(params["scale"])
    if size is not None:
        sizes = params.get("sizes", {})
        if size not in sizes:
            raise SeqnnError(f"preset {path.stem}: no size {size!r}; sizes: "
                             f"{', '.join(sizes) or 'none'}")
        values.update(sizes[size])
    unknown = [k for k in scale if k not in values]
    if unknown:
        raise SeqnnError(
            f"preset {path.stem}: unknown scale key {unknown[0]!r}; scale keys: "
            f"{', '.join(values)}"
        )
    for key, value in scale.items():  # numbers like the preset's own: integers, signs kept
        default = values[key]
        if isinstance(default, int | float) and not isinstance(value, dict):
            whole = isinstance(default, int)
            kind = Kind(("int",) if whole else ("number",),
                        None if default < 0 else int(whole and default > 0))
            if not kind.accepts(value) or (default > 0 and value == 0):
                raise SeqnnError(f"preset {path.stem}: scale {key} {value!r} must be {kind}"
                                 f"{' (not 0)' if default > 0 and not whole else ''}, as its "
                                 f"default {default!r}")
    for key, data_key in DATA_KEYS.items():
        if key in values and data_key in data:
            if key in scale and scale[key] != data[data_key]:
                raise SeqnnError(
                    f"model: {key} {scale[key]!r} differs from the data's {data_key} "
                    f"{data[data_key]!r}; leave it out (presets take it from the data)"
                )
            values[key] = data[data_key]
    values.update(scale)
    return values


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
        _check_data(params, data, path)
        return params
    values = _scale_values(params, path, size, data, scale)
    where = f"preset {path.stem}"
    for key, value in values.items():  # a scale default may be an expression of earlier keys
        values[key] = _substitute(value, values, f"{where}: scale.{key}")
    names = dict(values)
    if {"seq_length", "crop_bp", "pool_width"} <= names.keys():
        names["target_length"] = (
            values["seq_length"] - 2 * values["crop_bp"]
        ) // values["pool_width"]
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
