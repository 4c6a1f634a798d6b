"""Import published weights into seqnn models: Basenji / baskerville Keras-2 HDF5 files.

Basenji and baskerville save a model with `SeqNN.save`: a Keras-2 HDF5 file whose
`model_weights` group (or root, for `save_weights` files) lists its layers in `layer_names`,
each a group with `weight_names` and one dataset per weight. A full file holds the trunk and one
head; a file saved with `trunk=True` holds the trunk alone; several heads are several files that
share the trunk. The importer builds the model of the params file with seqnn's own
`build_model` and copies the tensors in, read with h5py alone (no old TensorFlow).

Layers are matched by kind (convolution, dense, separable convolution, batch norm, layer norm,
attention, ...: told apart by their weights, not their names) and, within a kind, by order, then
checked shape by shape: auto-generated names (`conv1d_7`, `sync_batch_normalization_3`) and where
a layer keeps its variables (`<mha>/<mha>/r_w_bias:0` or one level up) do not matter. Weights are
read and assigned one layer at a time.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras

from seqnn import SeqnnError
from seqnn.data.targets import DEFAULTS, read_sheet
from seqnn.model.build import build_model, load_model, save_model, unbuilt_model
from seqnn.model.params import head_lists, model_params, output_geometry
from seqnn.model.presets import load_params
from seqnn.model.pretrained_enformer import import_enformer
from seqnn.model.published import FORMATS, detect_format

log = logging.getLogger("seqnn")



@dataclass
class Layer:
    """A layer with weights: `weights` holds `(role, shape, ref)` per tensor, where `role` is the
    weight's path inside the layer (`kernel`, `q_layer/kernel`) and `ref` its HDF5 dataset path
    or Keras variable."""

    name: str
    weights: list

    @property
    def kind(self) -> str:
        roles = [role for role, _, _ in self.weights]
        last = {role.rsplit("/", 1)[-1] for role in roles}
        if "r_w_bias" in last:
            return "attention"
        nested = "nested " if any("/" in role for role in roles) else ""
        if "depthwise_kernel" in last:
            base = "separable convolution"
        elif "moving_mean" in last:
            base = "batch norm"
        elif last <= {"gamma", "beta"}:
            base = "layer norm"
        elif last <= {"kernel", "bias"} and "kernel" in last:
            rank = next(len(shape) for role, shape, _ in self.weights if role.endswith("kernel"))
            base = "convolution" if rank == 3 else "dense" if rank == 2 else f"rank-{rank} kernel"
        else:
            base = "+".join(sorted(last))
        return nested + base

    def shapes(self) -> str:
        return ", ".join(f"{role} {list(shape)}" for role, shape, _ in self.weights)


def _role(weight_name: str, layer_name: str) -> str:
    """`conv1d_7/kernel:0` in layer `conv1d_7` -> `kernel`; `mha/mha/r_w_bias:0` -> `r_w_bias`."""
    parts = weight_name.split(":")[0].split("/")
    return "/".join(p for p in parts if p != layer_name) or parts[-1]


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _weights_group(h5, path):
    """The group holding `layer_names` (a full-model file's `model_weights`, or the root)."""
    for group in (h5.get("model_weights"), h5):
        if group is not None and "layer_names" in group.attrs:
            return group
    raise SeqnnError(
        f"{path}: an HDF5 file but not a Keras weights file (no layer_names); give the .h5 that "
        "Basenji or baskerville SeqNN.save wrote (e.g. model_best.h5)"
    )


def _dataset_path(group, layer, weight_name, path):
    """Path of a weight's dataset: where `weight_names` says, or one level up or down."""
    base = weight_name.split("/", 1)[-1]
    for candidate in (f"{layer}/{weight_name}", f"{layer}/{base}", f"{layer}/{layer}/{base}"):
        if candidate in group:
            return f"{group.name.rstrip('/')}/{candidate}"
    raise SeqnnError(
        f"{path}: layer {layer!r} lists weight {weight_name!r} but holds no such dataset; the "
        "file is damaged: save it again"
    )


def read_layers(h5, path) -> list[Layer]:
    """The file's layers that hold weights, in its `layer_names` order."""
    group = _weights_group(h5, path)
    layers = []
    for name in map(_decode, group.attrs["layer_names"]):
        weight_names = [_decode(w) for w in group[name].attrs.get("weight_names", [])]
        weights = []
        for weight_name in weight_names:
            ref = _dataset_path(group, name, weight_name, path)
            weights.append((_role(weight_name, name), tuple(h5[ref].shape), ref))
        if weights:
            layers.append(Layer(name, weights))
    return layers


def model_layers(model) -> list[Layer]:
    """A Keras model's layers that hold weights, in `model.layers` order."""
    return [
        Layer(layer.name, [(_role(v.path, layer.name), tuple(v.shape), v) for v in layer.weights])
        for layer in model.layers
        if layer.weights
    ]


class _Misfit(Exception):
    """The first difference between a file's layers and a model's: `detail` says which."""

    def __init__(self, position, detail):
        super().__init__(detail)
        self.position = position
        self.detail = detail


def _pair_weights(ours: Layer, theirs: Layer, position: int, ordinal: str):
    """`(dataset path, variable)` pairs of two layers of one kind, by role or else by order."""
    mine = [role for role, _, _ in ours.weights]
    if sorted(mine) == sorted(role for role, _, _ in theirs.weights):
        by_role = {role: (shape, ref) for role, shape, ref in theirs.weights}
        pairs = [(role, by_role[role], (shape, var)) for role, shape, var in ours.weights]
    elif len(ours.weights) == len(theirs.weights):
        pairs = [
            (mine_role, (t_shape, ref), (shape, var))
            for (mine_role, shape, var), (_, t_shape, ref) in zip(ours.weights, theirs.weights)
        ]
    else:
        raise _Misfit(
            position,
            f"layer {theirs.name!r} (the {ordinal} {ours.kind} layer) holds {theirs.shapes()} "
            f"where the params build {ours.shapes()}",
        )
    for role, (t_shape, _), (shape, _) in pairs:
        if t_shape != shape:
            raise _Misfit(
                position,
                f"layer {theirs.name!r} (the {ordinal} {ours.kind} layer) has {role} "
                f"{list(t_shape)} where the params build {list(shape)}",
            )
    return [(ref, var) for _, (_, ref), (_, var) in pairs]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def match(theirs: list[Layer], ours: list[Layer]) -> list:
    """`(dataset path, variable)` pairs assigning file layers `theirs` to model layers `ours`.

    Raises `_Misfit` for the difference that comes first in the file's layer order.
    """
    kinds = {}
    for side, layers in ((0, theirs), (1, ours)):
        for position, layer in enumerate(layers):
            kinds.setdefault(layer.kind, ([], []))[side].append((position, layer))
    pairs, misfits = [], []
    for kind, (file_side, model_side) in kinds.items():
        for i, ((position, t), (_, o)) in enumerate(zip(file_side, model_side)):
            try:
                pairs += _pair_weights(o, t, position, _ordinal(i + 1))
            except _Misfit as misfit:
                misfits.append(misfit)
                break
        else:
            if len(file_side) != len(model_side):
                n = min(len(file_side), len(model_side))
                if len(file_side) > n:
                    position, extra = file_side[n]
                    what = f"first extra: {extra.name!r}, {extra.shapes()}"
                else:
                    position, missing = len(theirs), model_side[n][1]
                    what = f"first missing: {missing.shapes()}"
                misfits.append(_Misfit(
                    position,
                    f"the file has {len(file_side)} {kind} layers where the params build "
                    f"{len(model_side)} ({what})",
                ))
    if misfits:
        first = min(misfits, key=lambda m: m.position)
        counts = [f"{len(f)} {kind} layers where the params build {len(m)}"
                  for kind, (f, m) in kinds.items() if len(f) != len(m)]
        if counts and not first.detail.startswith("the file has"):
            more = ", ..." if len(counts) > 3 else ""
            first.detail += f" (the file has {', '.join(counts[:3])}{more})"
        raise first
    return pairs


def single_head_params(params: dict, head: int, where) -> tuple[dict, str]:
    """`params` with only head number `head` (heads in seqnn's natural order), and its name."""
    params = copy.deepcopy(params)
    body = model_params(params)
    heads = head_lists(body)
    names = list(heads)
    if not 0 <= head < len(names):
        listed = ", ".join(f"{i} ({n})" for i, n in enumerate(names))
        raise SeqnnError(f"{where}: no head {head}; its heads are {listed}; pick one with --head")
    name = names[head]
    kept = body.get(name, heads[name])  # as written; a head of a list of heads as its blocks
    for key in [k for k in body if k.startswith("head")]:
        del body[key]
    body[name if name.startswith("head_") else "head"] = kept
    return params, name


def _shape_only(params, trunk):
    """Weighted layers of the model `params` builds, with shapes but no initialised weights."""
    return model_layers(unbuilt_model(params, trunk))


def _fits(theirs, ours) -> _Misfit | None:
    try:
        match(theirs, ours)
    except _Misfit as misfit:
        return misfit
    return None


def _diagnose(weights, params_path, params, head, name, theirs, trunk_layers, full_misfit):
    """The SeqnnError for a file that fits neither the trunk nor the chosen head's model."""
    where = f"{weights}: does not fit {params_path}"
    if _fits(theirs[: len(trunk_layers)], trunk_layers) is None:
        for other in range(len(_head_names(params))):
            if other == head:
                continue
            other_params, other_name = single_head_params(params, other, params_path)
            if _fits(theirs, _shape_only(other_params, False)) is None:
                return SeqnnError(
                    f"{where} head {head} ({name}) but its head is head {other} ({other_name}) "
                    f"of the params; import it with --head {other}"
                )
        return SeqnnError(
            f"{where} head {head} ({name}): {full_misfit.detail}; likely cause: the file's head "
            "is not this one (wrong --head, or params of another model's heads)"
        )
    return SeqnnError(
        f"{where}: {full_misfit.detail}; likely cause: a params file other than the one these "
        "weights were trained with"
    )


def _head_names(params):
    return list(head_lists(model_params(params)))


def _open_h5(weights):
    try:
        return h5py.File(weights, "r")
    except FileNotFoundError:
        raise SeqnnError(f"{weights}: weights file not found; check the path") from None
    except OSError as err:
        raise SeqnnError(
            f"{weights}: not an HDF5 file ({err}); give the .h5 that Basenji or baskerville "
            "SeqNN.save wrote"
        ) from None


def import_baskerville(weights, params, head: int = 0, trunk: bool | None = None):
    """Keras model and params (with that head only) from a Basenji / baskerville HDF5 file.

    `params` is a params file (or dict); `head` picks which of its heads (natural key order,
    as `build_model` orders them) the file's head is. `trunk`: True for a file saved with
    `SeqNN.save(trunk=True)`, False for a full model, None to tell from the file. Returns
    `(model, params, is_trunk)`; the model is float32 and built by `seqnn.model.build_model`.
    """
    params_path = params if isinstance(params, str | os.PathLike) else "the params"
    params = load_params(params) if isinstance(params, str | os.PathLike) else params
    single, name = single_head_params(params, head, params_path)
    h5 = _open_h5(weights)
    with h5:
        theirs = read_layers(h5, weights)
        trunk_layers = _shape_only(single, True)
        full_misfit = _fits(theirs, _shape_only(single, False))
        trunk_misfit = _fits(theirs, trunk_layers)
        if full_misfit is None and trunk is not True:
            is_trunk = False
        elif trunk_misfit is None and trunk is not False:
            is_trunk = True
        elif full_misfit is None:
            raise SeqnnError(
                f"{weights}: holds a trunk and a head, not a trunk only; import it as a full model"
            )
        elif trunk_misfit is None:
            raise SeqnnError(
                f"{weights}: holds a trunk only (SeqNN.save(trunk=True)), no head; import it "
                "as a trunk, or give the full model file (trunk and head, e.g. model0_best.h5)"
            )
        else:
            raise _diagnose(weights, params_path, params, head, name, theirs, trunk_layers,
                            full_misfit)
        model = build_model(single, trunk=is_trunk)
        for ref, variable in match(theirs, model_layers(model)):
            variable.assign(h5[ref][()])
    return model, single, is_trunk


def _select_head(model, params, head, where):
    """`model` and `params` reduced to output `head` where the model has several outputs."""
    if len(model.outputs) == 1:
        return model, params
    single, _ = single_head_params(params, head, where)
    return keras.Model(model.inputs, model.outputs[head], name=model.name), single


def _track_rows(targets, tracks: int, where: str, weights) -> list[dict]:
    """Rows of the track sheet `targets`, or generated identifiers t0..t{tracks-1}."""
    if targets is None:
        log.warning("%s: no targets file given; tracks named t0..t%d (give --targets "
                    "targets.txt for the published identifiers and transforms)", weights,
                    tracks - 1)
        return [{"identifier": f"t{i}", "file": "", **DEFAULTS, "strand_pair": i}
                for i in range(tracks)]
    sheet = read_sheet(targets)
    if len(sheet) != tracks:
        raise SeqnnError(
            f"{targets}: {len(sheet)} rows but {where} predicts {tracks} tracks; give the targets "
            "file of this head (one row per output track)"
        )
    return sheet.to_dict("records")


def statistics(params, model, trunk: bool = False) -> dict:
    """Geometry a `.keras` file carries: seq_length, target_length, pool_width, crop_bp and
    num_targets (statistics.json keys), from the params and the model's output."""
    seq_length = int(model_params(params)["seq_length"])
    bins, (_, jump) = output_geometry(params, trunk=trunk)
    _, out_bins, tracks = model.output_shape
    pool = int(round(jump))
    if out_bins != bins or not math.isclose(pool, jump) or (seq_length - bins * pool) % 2:
        raise SeqnnError(
            f"the imported model outputs {out_bins} bins of {jump:g} bp from {seq_length} bp, "
            "which no centred crop explains; predictions need bins of whole bp"
        )
    return {"seq_length": seq_length, "target_length": bins, "pool_width": pool,
            "crop_bp": (seq_length - bins * pool) // 2, "num_targets": tracks}


def import_model(weights, output, *, params=None, targets=None, head: int | None = None,
                 format: str | None = None, trunk: bool | None = None) -> dict:
    """Import published weights and write a seqnn `.keras` file at `output`.

    `format`: `baskerville` (Basenji / baskerville HDF5, needs `params`), `enformer` (a directory
    in the enformer-pytorch Hugging Face layout) or None to tell from `weights`. The file
    carries the params (the chosen head only), the track sheet (`targets`, else generated
    identifiers) and the geometry, so every seqnn command takes it like a trained model.
    Returns a summary: format, head, trunk, seq_length, target_length, tracks, seconds.
    """
    start = time.perf_counter()
    format = format or detect_format(weights)
    if format not in FORMATS:
        raise SeqnnError(f"import: unknown format {format!r}; use one of {', '.join(FORMATS)}")
    is_trunk = False
    if format == "baskerville":
        if params is None:
            raise SeqnnError(f"{weights}: baskerville weights need their params file; give "
                             "--params params.json (the one the model was trained with)")
        model, params, is_trunk = import_baskerville(weights, params, head or 0, trunk)
    else:
        model, params = import_enformer(weights)
        model, params = _select_head(model, params, head or 0, weights)
    stats = statistics(params, model, is_trunk)
    if is_trunk and targets is not None:
        raise SeqnnError(f"{targets}: {weights} holds a trunk (no head), so it predicts no "
                         "tracks; drop --targets or give the full model file")
    head_name = "the trunk" if is_trunk else f"head {head or 0} ({_head_names(params)[0]})"
    rows = _track_rows(targets, stats["num_targets"], head_name, weights)
    save_model(model, output, params=params, targets=rows, statistics=stats)
    return {"format": format, "output": str(output), "head": head or 0, "trunk": is_trunk,
            **stats, "seconds": round(time.perf_counter() - start, 2)}


def restore_weights(model, weights, trunk_ids: set | None = None) -> int:
    """Copy pretrained `weights` into `model`: a seqnn `.keras` file or a Basenji / baskerville
    `.h5` (as the importer reads it). With `trunk_ids` (ids of `model`'s trunk layers), only the
    trunk is restored from the file's first layers (a trunk file, or a full model whose head is
    dropped); otherwise the file must fit the whole model, head included. Returns the number of
    tensors copied."""
    ours = model_layers(model)
    if trunk_ids is not None:
        kept = {la.name for la in model.layers if id(la) in trunk_ids}
        ours = [la for la in ours if la.name in kept]
    with contextlib.ExitStack() as stack:
        if Path(weights).suffix == ".keras":
            theirs, read = model_layers(load_model(weights)[0]), keras.ops.convert_to_numpy
        else:
            h5 = stack.enter_context(_open_h5(weights))
            theirs, read = read_layers(h5, weights), lambda ref: h5[ref][()]
        if trunk_ids is not None:
            theirs = theirs[: len(ours)]
        try:
            pairs = match(theirs, ours)
        except _Misfit as misfit:
            hint = ("the params' trunk is not the file's" if trunk_ids is not None else
                    "restore the trunk only (--trunk) for a new head, or fix the params")
            raise SeqnnError(f"{weights}: does not fit the model: {misfit.detail}; "
                             f"{hint}") from None
        for ref, variable in pairs:
            variable.assign(read(ref))
    return len(pairs)
