"""Ensembles: model files loaded and checked together, compiled inference, test-time
augmentation, and the mean (and variance) over an ensemble's members.

A member is one prediction of a window: a model x a (shift, strand) augmentation (x a
Monte-Carlo dropout pass with `passes` > 1, `seqnn.apply.dropout`). One-hot
channels are A, C, G, T, so the reverse complement of x [B, L, 4] is x[:, ::-1, ::-1]. A
prediction of the reverse complement is flipped back along length and its stranded tracks
swapped through `strand_pair` (track t takes the RC output of track strand_pair[t]).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from seqnn import SeqnnError
from seqnn.data.selection import track_indices
from seqnn.model.build import load_model
from seqnn.model.params import model_params
from seqnn.model.select import select_tracks

log = logging.getLogger("seqnn")

GEOMETRY = ("seq_length", "target_length", "pool_width", "crop_bp")


# ---------------------------------------------------------------------------------------------
# Test-time augmentation


def shift_one_hot(x: np.ndarray, shift: int) -> np.ndarray:
    """x [B, L, 4] moved `shift` bp to the right (left if negative), padded with N (zeros)."""
    if shift == 0:
        return x
    out = np.zeros_like(x)
    if shift > 0:
        out[:, shift:] = x[:, :-shift]
    else:
        out[:, :shift] = x[:, -shift:]
    return out


def reverse_complement_one_hot(x: np.ndarray) -> np.ndarray:
    return x[:, ::-1, ::-1]


def unflip(y: np.ndarray, strand_pair: Sequence[int] | None) -> np.ndarray:
    """Map a prediction of the reverse-complement sequence back to the forward strand."""
    y = y[:, ::-1]
    return y if strand_pair is None else y[..., list(strand_pair)]


def augmented(model, x: np.ndarray, rc: bool = False, shifts: Sequence[int] = (0,),
              strand_pair: Sequence[int] | None = None, passes: int = 1) -> Iterator[np.ndarray]:
    """Yield the forward-strand prediction of every (shift, strand) augmentation of a batch,
    `passes` times each (Monte-Carlo dropout models draw new masks at every call)."""
    x = np.asarray(x, dtype=np.float32)
    for shift in shifts:
        xs = shift_one_hot(x, shift)
        xr = np.ascontiguousarray(reverse_complement_one_hot(xs)) if rc else None
        for _ in range(passes):
            yield np.asarray(model(xs, training=False), dtype=np.float32)
            if rc:
                y = model(xr, training=False)
                yield unflip(np.asarray(y, dtype=np.float32), strand_pair)


def predict_augmented(model, x: np.ndarray, rc: bool = False, shifts: Sequence[int] = (0,),
                      strand_pair: Sequence[int] | None = None) -> np.ndarray:
    """Mean prediction [B, T_len, T] over shifts × strands for one batch x [B, L, 4]."""
    total, n = None, 0
    for y in augmented(model, x, rc, shifts, strand_pair):
        total = y if total is None else total + y
        n += 1
    return total / n


# ---------------------------------------------------------------------------------------------
# Models


@dataclass
class Ensemble:
    """Models of one geometry and track sheet (e.g. the K fold models), ready to predict."""

    paths: list[str]
    models: list
    seq_length: int
    target_length: int
    pool_width: int
    crop_bp: int
    tracks: list[dict]
    selected: list[int] | None = None  # the tracks' rows in the models' own sheet
    asked: int | None = None  # how many were asked for (strand partners follow them)

    @property
    def identifiers(self) -> list[str]:
        return [str(t["identifier"]) for t in self.tracks]

    @property
    def strand_pair(self) -> list[int]:
        return [int(t.get("strand_pair", i)) for i, t in enumerate(self.tracks)]


def _checked(path: str, head: int | None, selection: dict) -> dict:
    """One model file checked against its own params and statistics: the model (one head, cut
    to `selection`: `select_tracks`' tracks, sum and partners), its geometry and track sheet."""
    model, meta = load_model(path)
    if len(model.outputs) > 1:
        if head is None or not 0 <= head < len(model.outputs):
            raise SeqnnError(f"{path}: the model has {len(model.outputs)} heads; pick one with "
                             f"head 0..{len(model.outputs) - 1} (--head, predict.head)")
        model = keras.Model(model.inputs, model.outputs[head])
    elif head not in (None, 0):
        raise SeqnnError(f"{path}: the model has one head, so there is no head {head}; drop "
                         "--head (predict.head) or give 0")
    _, length, depth = model.input_shape
    _, bins, ntracks = model.output_shape
    if depth != 4:
        raise SeqnnError(f"{path}: the model reads {depth} channels per base but predictions "
                         "feed one-hot DNA (A, C, G, T); use a model with seq_depth 4")
    declared = model_params(meta["params"] or {}).get("seq_length", length)
    stats = meta["statistics"] or {}
    for what, value in (("its params' seq_length", declared),
                        ("its data's seq_length", stats.get("seq_length", length))):
        if value != length:
            raise SeqnnError(f"{path}: the model reads {length} bp but {what} is {value}; "
                             "re-save the model with matching params and statistics")
    crop = int(stats.get("crop_bp", 0))
    pool = int(stats.get("pool_width") or (length - 2 * crop) // bins)
    if length - 2 * crop != bins * pool:
        raise SeqnnError(f"{path}: {bins} bins of {pool} bp with crop_bp {crop} do not span "
                         f"seq_length {length}; save the model with its data's statistics")
    tracks = meta["targets"]
    if tracks is None:
        log.warning("%s: no track sheet in the model; tracks named t0..t%d, untransformed as "
                    "sums", path, ntracks - 1)
        tracks = [{"identifier": f"t{i}", "strand_pair": i} for i in range(ntracks)]
    if len(tracks) != ntracks:
        raise SeqnnError(f"{path}: the model predicts {ntracks} tracks but its sheet lists "
                         f"{len(tracks)}; re-save it with the sheet it was trained on")
    where, sheet, asked = f"tracks of {path}", "its track sheet", None
    if selection["tracks"] is not None and not selection["sum"]:
        asked = len(track_indices(tracks, selection["tracks"], where=where, sheet=sheet))
    model, tracks, selected = select_tracks(model, tracks, **selection, where=where, sheet=sheet)
    return {"path": str(path), "model": model, "seq_length": length, "target_length": bins,
            "pool_width": pool, "crop_bp": crop, "tracks": tracks, "selected": selected,
            "asked": asked}


def load_ensemble(paths: Sequence[str], head: int | None = None,
                  seq_length: int | None = None, tracks=None, sum_tracks: bool = False,
                  partners: bool = False) -> Ensemble:
    """Load model files that share geometry and tracks; `seq_length` is checked if given.

    `tracks` (identifiers, indices or description regexes; None: all) cuts each model's head
    to those tracks, followed by their strand partners with `partners` (needed to average
    reverse complements), or summed into one with `sum_tracks` (`seqnn.model.select`).
    """
    if not paths:
        raise SeqnnError("predict: no model file given; give at least one .keras model")
    selection = {"tracks": tracks, "sum": sum_tracks, "partners": partners}
    loaded = [_checked(str(path), head, selection) for path in paths]
    first = loaded[0]
    for other in loaded[1:]:
        for key in GEOMETRY:
            if other[key] != first[key]:
                raise SeqnnError(f"{other['path']}: {key} {other[key]} differs from "
                                 f"{first[key]} of {first['path']}; ensemble models trained "
                                 "on the same data")
        if [t["identifier"] for t in other["tracks"]] != [t["identifier"]
                                                          for t in first["tracks"]]:
            raise SeqnnError(f"{other['path']}: its tracks differ from those of "
                             f"{first['path']}; ensemble models trained on the same track sheet")
    if seq_length is not None and first["seq_length"] != seq_length:
        raise SeqnnError(f"{first['path']}: the model reads {first['seq_length']} bp but "
                         f"data.seq_length is {seq_length}; predict with the models trained on "
                         "this data")
    return Ensemble([m["path"] for m in loaded], [m["model"] for m in loaded],
                    *(first[k] for k in (*GEOMETRY, "tracks", "selected", "asked")))


def compiled_inference(model, seq_length: int, batch_size: int, jit_compile: bool = False):
    """`model` as a compiled inference call x [B, L, 4] -> y for any batch size, called as a
    model is (`fn(x, training=False)`).

    With `jit_compile` (XLA), smaller batches are padded to `batch_size`, so XLA compiles one
    shape only.
    """
    fn = tf.function(lambda x: model(x, training=False), jit_compile=jit_compile,
                     reduce_retracing=True,
                     input_signature=[tf.TensorSpec([None, seq_length, 4], tf.float32)])
    if not jit_compile:
        return lambda x, training=False: fn(x)

    def padded(x, training=False):
        n = len(x)
        if n >= batch_size:
            return fn(x)
        return fn(np.concatenate([x, np.zeros((batch_size - n, *x.shape[1:]), x.dtype)]))[:n]

    return padded


# ---------------------------------------------------------------------------------------------
# Mean and variance over members


class MemberMoments:
    """Mean and variance over the members (models × augmentations) of one batch, in one
    streaming pass (Welford's update: members are never held together). `scale` maps each
    member's prediction before it is averaged (e.g. `coverage.track_untransform`); `passes`
    calls each (model, augmentation) (Monte-Carlo dropout)."""

    def __init__(self, models, rc=False, shifts=(0,), strand_pair=None, scale=None,
                 variance=False, passes=1):
        if not shifts:
            raise SeqnnError("shifts: give at least one shift, e.g. [0] or [-1, 0, 1]")
        self.models, self.rc, self.shifts = models, rc, tuple(shifts)
        self.strand_pair, self.scale, self.variance = strand_pair, scale, variance
        self.passes = passes

    @property
    def per_model(self) -> int:
        return len(self.shifts) * (2 if self.rc else 1) * self.passes

    def members(self, x: np.ndarray, models=None) -> Iterator[np.ndarray]:
        """Every member's (scaled) prediction of x, model by model."""
        for model in self.models if models is None else models:
            for y in augmented(model, x, self.rc, self.shifts, self.strand_pair, self.passes):
                yield self.scale(y) if self.scale else y

    def moments(self, x: np.ndarray, models) -> tuple[np.ndarray, np.ndarray | None]:
        length = x.shape[1]
        if max(map(abs, self.shifts)) >= length:
            raise SeqnnError(f"shifts {', '.join(map(str, self.shifts))}: a shift must be "
                             f"shorter than the {length} bp window; give --shifts within "
                             f"-{length - 1}..{length - 1} (a few bp, e.g. -1,0,1)")
        if not self.variance:  # a plain sum: the rounding of predict_augmented
            total, n = 0.0, 0
            for y in self.members(x, models):
                total, n = total + y, n + 1
            return total / n, None
        n, mean, m2 = 0, 0.0, 0.0
        for y in self.members(x, models):
            n += 1
            delta = y - mean
            mean = mean + delta / n
            m2 = m2 + delta * (y - mean)
        return mean, m2 / n

    def __call__(self, x: np.ndarray, groups: np.ndarray | None = None):
        """Moments of x [B, L, 4]; `groups` [B, T] picks per bin a model (-1: all of them)."""
        if groups is None:
            return self.moments(x, self.models)
        mean = var = None
        for g in np.unique(groups):
            rows = (groups == g).any(axis=1)
            m, v = self.moments(x[rows], self.models if g < 0 else [self.models[g]])
            if mean is None:
                mean = np.zeros((len(x), *m.shape[1:]), np.float32)
                var = np.zeros_like(mean) if self.variance else None
            pick = (groups[rows] == g)[..., None]
            mean[rows] = np.where(pick, m, mean[rows])
            if self.variance:
                var[rows] = np.where(pick, v, var[rows])
        return mean, var
