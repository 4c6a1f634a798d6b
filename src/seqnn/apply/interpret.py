"""Interpretation: gradient maps and in-silico saturation mutagenesis (ISM) of model predictions.

Aggregate. A model maps one-hot x [L, 4] (A, C, G, T; N all zeros) to y [T_len, T]. For sequence
i and selected track k the aggregate is A_ik(x) = sum_b w_i[b] y[b, t_ik], with w_i = 1 (``sum``)
or 1 / |B_i| (``mean``) on a bin window B_i = [b0, b1) and 0 elsewhere, and t_ik a track index.
By default B is the centre max(1, T_len // 8) bins, widened by one to T_len's parity so that it
is its own mirror image, and the tracks are all of them; both may be given per sequence (e.g.
bins around a TSS, and the track of a gene's strand: t on +, strand_pair[t] on -).

Gradients. g_ik = dA_ik / dx_i [L, 4]. Sequences do not interact at inference, so the gradient
of sum_i A_ik with respect to the whole batch holds every g_ik: one forward pass under a
persistent tape, then one backward pass per selected track (TRACK_CHUNK tracks per forward pass);
no Jacobian is formed.

Augmentations. Every member, a (model, shift, strand) triple, contributes the exact gradient of
the same forward-strand aggregate, and the maps are averaged. A shift s predicts
x' = shift(x, s), so dA/dx[l] = dA/dx'[l + s]: the gradient is shifted back by -s (0 where
x'[l + s] was padding). The reverse complement x^rc = x[::-1, ::-1] predicts forward bin b as bin
T_len - 1 - b and track t as strand_pair[t], so its aggregate takes the mirrored window and the
paired tracks, and its gradient is mapped back as g^rc[::-1, ::-1] (reversed along length, A<->T
and C<->G swapped).

Scores. As sum_c x[l, c] = 1 for every base, the gradient's component along (1, 1, 1, 1) at a
position is arbitrary; centring, g'[l, c] = g[l, c] - mean_c g[l, c], removes it. The
contribution score (input x gradient) is sum_c x[l, c] g'[l, c], the centred gradient of the
observed base (0 at N). Saliency is sum_c |g| (``abs_sum``), max_c |g| (``abs_max``) or the
raw gradient of the observed base (``observed``).

ISM. Each position of a W bp window is set to each base other than the reference (all four at
N): 3W mutants per sequence, built by fancy indexing and predicted in batches across sequences.
Per member and sequence, two aggregates are kept, S = sum_b y[b, t] over all bins and A (above);
both are averaged over members, then per mutation: ``sum`` = S_alt - S_ref, ``centre`` =
A_alt - A_ref and ``logfc`` = log2((A_alt + c) / (A_ref + c)) (c: pseudocount; aggregates are
assumed non-negative, as coverage is). Arrays are [N, W, 4, K], 0 at the reference base.

Regions. `gradient_maps` and `ism` centre a seq_length window on each BED region (its midpoint
(start + end) // 2) or, with `tss`, on its TSS (start on +, end - 1 on -; the BED's 6th column,
+ when absent), read the FASTA (N past chromosome ends) and write HDF5 (`GRADIENT_LAYOUT`,
`ISM_LAYOUT`). Regions on chromosomes absent from the FASTA are skipped, logged and counted
(`skipped` in the summary and the file's attributes), or stop the run with ``missing="error"``.
Contribution bigWigs (one per selected track, 1 bp entries, chromosomes as the FASTA or its
aliases) cover every window, each base from the window whose centre is nearest (ties: the
window starting first), the rule of centre stitching; they are computed from the stored
gradients.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd
import pyBigWig
import tensorflow as tf

from seqnn import SeqnnError
from seqnn.apply.ensemble import reverse_complement_one_hot, shift_one_hot
from seqnn.apply.predict import load_ensemble, read_regions
from seqnn.data.dna import one_hot
from seqnn.data.genome import chrom_sizes, fetch_codes, open_fasta
from seqnn.io import atomic_path
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")

REDUCE = ("sum", "mean")
SALIENCY = ("abs_sum", "abs_max", "observed")
ISM_STATS = ("sum", "centre", "logfc")
MISSING = ("skip", "error")
TRACK_CHUNK = 8  # selected tracks per forward pass of a gradient call
ISM_WIDTH = 200  # bp mutated by default, centred in the window

GRADIENT_LAYOUT = """\
seqs         uint8 [N, L, 4]      one-hot input windows (N: all zeros)
grads        dtype [N, L, 4, K]   mean gradient of each selected track's aggregate (float16 by
                                  default: ~3 significant digits, |g| < 6e-8 flushes to 0)
aggregate    float32 [N, K]       the aggregate's mean prediction over members
chrom, name, strand               per region (chrom as in the BED); strand + where absent
start, end   int64 [N]            the window (end - start = L; may pass chromosome ends)
identifiers  bytes [K]            the selected tracks (on + strand)
track_index  int64 [N, K]         the track aggregated per region (its pair on - with tss)
bin_window   int64 [N, 2]         the aggregate's bins [b0, b1) per region
attrs: reduce, rc, shifts, members, models, tss, seq_length, target_length, pool_width,
       crop_bp, skipped (regions off the genome), dtype"""

ISM_LAYOUT = """\
seqs         uint8 [N, W, 4]      one-hot reference of the mutated window
sum, centre, logfc  float32 [N, W, 4, K]   ISM statistics (module docstring), 0 at the reference
ref_sum, ref float32 [N, K]       S and A of the reference (mean over members)
chrom, name, strand               per region (chrom as in the BED)
start, end   int64 [N]            the mutated window (end - start = W)
seq_start    int64 [N]            the model's input window (L bp)
identifiers, track_index, bin_window, attrs: as for gradients, plus pseudo and width"""


# ---------------------------------------------------------------------------------------------
# Aggregates


@dataclass
class Aggregate:
    """Per sequence i and selected track k: A_ik = sum_b weights[i, b] * y[i, b, tracks[i, k]]."""

    weights: np.ndarray  # [N, T_len] float32
    tracks: np.ndarray  # [N, K] int32

    def __len__(self) -> int:
        return len(self.weights)

    def __getitem__(self, rows) -> Aggregate:
        return Aggregate(self.weights[rows], self.tracks[rows])

    def mirrored(self, strand_pair: np.ndarray | None) -> Aggregate:
        """The same aggregate read from a prediction of the reverse complement."""
        tracks = self.tracks if strand_pair is None else strand_pair[self.tracks]
        return Aggregate(np.ascontiguousarray(self.weights[:, ::-1]), tracks)


def centre_window(target_length: int, width: int | None = None) -> tuple[int, int]:
    """Bins [b0, b1) of the centre `width` bins (default: module docstring)."""
    if width is None:
        width = max(1, target_length // 8)
        width += (target_length - width) % 2
    if not 1 <= width <= target_length:
        raise SeqnnError(f"window of {width} bins: need 1..{target_length} (the model's bins); "
                         "give a smaller window")
    b0 = (target_length - width) // 2
    return b0, b0 + width


def bin_windows(n: int, target_length: int, window=None) -> np.ndarray:
    """Windows [n, 2] from None (centre), a width in bins, (b0, b1), or per-sequence [n, 2]."""
    if window is None or np.ndim(window) == 0:
        w = np.array(centre_window(target_length, None if window is None else int(window)))
    else:
        w = np.asarray(window, np.int64)
    if w.shape not in ((2,), (n, 2)):
        raise SeqnnError(f"window {w.shape}: give a width, (b0, b1) or one (b0, b1) per "
                         f"sequence [{n}, 2]")
    w = np.broadcast_to(w, (n, 2)).astype(np.int64)
    bad = (w[:, 0] < 0) | (w[:, 1] <= w[:, 0]) | (w[:, 1] > target_length)
    if bad.any():
        raise SeqnnError(f"bin window {w[bad][0].tolist()}: need 0 <= b0 < b1 <= "
                         f"{target_length} (the model's bins); fix the window")
    return w


def select_tracks(n: int, n_tracks: int, tracks=None) -> np.ndarray:
    """Track indices [n, K] from None (all), an index, a list, or per-sequence [n, K]."""
    t = np.arange(n_tracks) if tracks is None else np.asarray(tracks, np.int64)
    t = t.reshape(1, -1) if t.ndim < 2 else t
    if t.ndim != 2 or t.shape[0] not in (1, n) or t.shape[1] == 0:
        raise SeqnnError(f"tracks {t.shape}: give an index, a list, or [{n}, K] per sequence")
    if ((t < 0) | (t >= n_tracks)).any():
        raise SeqnnError(f"track index {t[(t < 0) | (t >= n_tracks)][0]} out of range: the "
                         f"model predicts tracks 0..{n_tracks - 1}")
    return np.broadcast_to(t, (n, t.shape[1])).astype(np.int32)


def aggregate(n: int, target_length: int, n_tracks: int, tracks=None, window=None,
              reduce: str = "sum") -> Aggregate:
    """The aggregate of n sequences: `tracks` as `select_tracks`, `window` as `bin_windows`."""
    if reduce not in REDUCE:
        raise SeqnnError(f"reduce {reduce!r} is not one of {', '.join(REDUCE)}")
    w = bin_windows(n, target_length, window)
    bins = np.arange(target_length)
    inside = (bins >= w[:, :1]) & (bins < w[:, 1:])
    weights = inside / (w[:, 1:] - w[:, :1]) if reduce == "mean" else inside
    return Aggregate(weights.astype(np.float32), select_tracks(n, n_tracks, tracks))


def strand_tracks(tracks: Sequence[int], strands: Sequence[str],
                  strand_pair: Sequence[int]) -> np.ndarray:
    """Per sequence [N, K]: the tracks on + strand genes, their strand pairs on - strand ones."""
    t = np.atleast_1d(np.asarray(tracks, np.int64))
    minus = np.asarray(strands) == "-"
    return np.where(minus[:, None], np.asarray(strand_pair)[t][None], t[None])


def tss_windows(positions: np.ndarray, target_length: int, pool_width: int, crop_bp: int = 0,
                width: int | None = None) -> np.ndarray:
    """Windows [N, 2] of `width` bins (default as `centre_window`) around the bin holding each
    TSS position (bp within the input window), moved inside the predicted bins where needed."""
    width = np.diff(centre_window(target_length, width))[0]
    b = (np.asarray(positions, np.int64) - crop_bp) // pool_width
    b0 = np.clip(b - width // 2, 0, target_length - width)
    return np.stack([b0, b0 + width], 1)


# ---------------------------------------------------------------------------------------------
# Scores


def centre_bases(grads: np.ndarray) -> np.ndarray:
    """Gradients [N, L, 4, ...] minus their mean over the four bases at each position."""
    return grads - grads.mean(axis=2, keepdims=True)


def input_x_gradient(x: np.ndarray, grads: np.ndarray, centre: bool = True) -> np.ndarray:
    """Contribution scores [N, L, ...]: the (centred) gradient of the observed base of one-hot x
    [N, L, 4] (0 at N)."""
    g = centre_bases(grads) if centre else grads
    return np.einsum("nlc,nlc...->nl...", np.asarray(x, g.dtype), g)


def saliency(grads: np.ndarray, x: np.ndarray | None = None, mode: str = "abs_sum") -> np.ndarray:
    """Saliency [N, L, ...] of gradients [N, L, 4, ...]: ``abs_sum``, ``abs_max`` over bases,
    or ``observed`` (the raw gradient of the observed base; needs x)."""
    if mode == "abs_sum":
        return np.abs(grads).sum(axis=2)
    if mode == "abs_max":
        return np.abs(grads).max(axis=2)
    if mode == "observed" and x is not None:
        return input_x_gradient(x, grads, centre=False)
    raise SeqnnError(f"saliency {mode!r}: use one of {', '.join(SALIENCY)} (observed needs x)")


# ---------------------------------------------------------------------------------------------
# Models


class Interpreter:
    """Gradients and ISM of models of one geometry (e.g. the fold models), averaged over shifts
    and strands. Models map [B, L, 4] to [B, T_len, T] (one head); `strand_pair[t]` is track
    t's opposite-strand track (default: every track its own)."""

    def __init__(self, models, *, rc: bool = False, shifts: Sequence[int] = (0,),
                 strand_pair: Sequence[int] | None = None, batch_size: int = 32):
        self.models = list(models)
        if not self.models:
            raise SeqnnError("interpret: no model given; give at least one model")
        if not shifts:
            raise SeqnnError("shifts: give at least one shift, e.g. [0] or [-1, 0, 1]")
        if batch_size < 1:
            raise SeqnnError(f"batch_size {batch_size}: give a positive batch size")
        shapes = {(tuple(m.input_shape), tuple(m.output_shape)) for m in self.models}
        (inp, out), *others = shapes
        flat = all(d is None or isinstance(d, int) for d in (*inp, *out))
        if others or not flat or len(inp) != 3 or inp[2] != 4 or len(out) != 3:
            raise SeqnnError(f"interpret: models map {sorted(shapes)}; give one-head models of "
                             "one geometry reading one-hot DNA [batch, length, 4]")
        self.seq_length, self.target_length, self.n_tracks = int(inp[1]), int(out[1]), int(out[2])
        self.rc, self.shifts, self.batch_size = bool(rc), tuple(int(s) for s in shifts), batch_size
        pair = np.arange(self.n_tracks) if strand_pair is None else np.asarray(strand_pair)
        if pair.shape != (self.n_tracks,) or (np.sort(pair) != np.arange(self.n_tracks)).any():
            raise SeqnnError(f"strand_pair {pair.tolist()}: need one index per track "
                             f"(0..{self.n_tracks - 1}), a permutation")
        self.strand_pair = pair.astype(np.int32)
        self._fns = {}

    @property
    def members(self) -> int:
        return len(self.models) * len(self.shifts) * (2 if self.rc else 1)

    def aggregate(self, n: int, tracks=None, window=None, reduce: str = "sum") -> Aggregate:
        return aggregate(n, self.target_length, self.n_tracks, tracks, window, reduce)

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.seq_length, 4):
            raise SeqnnError(f"sequences {x.shape}: the models read one-hot "
                             f"[batch, {self.seq_length}, 4]; give windows of that length")
        return x

    def _views(self, x: np.ndarray, agg: Aggregate) -> Iterator[tuple]:
        """(x', aggregate', back) per (shift, strand); back maps a gradient w.r.t. x' to x."""
        mirrored = agg.mirrored(self.strand_pair) if self.rc else None
        for s in self.shifts:
            xs = shift_one_hot(x, s)
            yield xs, agg, lambda g, s=s: shift_one_hot(g, -s)
            if self.rc:
                yield (np.ascontiguousarray(reverse_complement_one_hot(xs)), mirrored,
                       lambda g, s=s: shift_one_hot(reverse_complement_one_hot(g), -s))

    def _specs(self, k):
        return [tf.TensorSpec([None, self.seq_length, 4], tf.float32),
                tf.TensorSpec([None, self.target_length], tf.float32),
                tf.TensorSpec([None, k], tf.int32)]

    def _gradient_fn(self, i: int, k: int):
        """Compiled (x, weights, tracks [B, k]) -> (gradients [B, L, 4, k], aggregates [B, k])."""
        if ("grad", i, k) not in self._fns:

            model = self.models[i]

            def fn(x, w, tracks):
                with tf.GradientTape(persistent=k > 1) as tape:
                    tape.watch(x)
                    y = tf.cast(model(x, training=False), tf.float32)
                    a = tf.einsum("bt,btk->bk", w, tf.gather(y, tracks, axis=2, batch_dims=1))
                    parts = [a[:, j] for j in range(k)]
                zero = tf.UnconnectedGradients.ZERO
                return tf.stack([tape.gradient(p, x, unconnected_gradients=zero)
                                 for p in parts], -1), a

            self._fns["grad", i, k] = tf.function(fn, input_signature=self._specs(k))
        return self._fns["grad", i, k]

    def _aggregate_fn(self, i: int):
        """Compiled (x, weights, tracks [B, K]) -> (A [B, K], S [B, K]), S over all bins."""
        if ("agg", i) not in self._fns:

            model = self.models[i]

            def fn(x, w, tracks):
                y = tf.gather(tf.cast(model(x, training=False), tf.float32), tracks, axis=2,
                              batch_dims=1)
                return tf.einsum("bt,btk->bk", w, y), tf.reduce_sum(y, axis=1)

            self._fns["agg", i] = tf.function(fn, input_signature=self._specs(None))
        return self._fns["agg", i]

    def gradients(self, x, agg: Aggregate) -> tuple[np.ndarray, np.ndarray]:
        """Mean over members of the gradients [N, L, 4, K] of `agg` at one-hot x [N, L, 4], and
        of the aggregates [N, K]."""
        x = self._check(x)
        n, k = len(x), agg.tracks.shape[1]
        grads = np.zeros((n, self.seq_length, 4, k), np.float32)
        values = np.zeros((n, k), np.float32)
        for lo in range(0, n, self.batch_size):
            rows = slice(lo, lo + self.batch_size)
            for i in range(len(self.models)):
                for xa, aa, back in self._views(x[rows], agg[rows]):
                    for c0 in range(0, k, TRACK_CHUNK):
                        cols = slice(c0, min(c0 + TRACK_CHUNK, k))
                        fn = self._gradient_fn(i, cols.stop - cols.start)
                        g, a = fn(xa, aa.weights, np.ascontiguousarray(aa.tracks[:, cols]))
                        grads[rows, ..., cols] += back(g.numpy())
                        values[rows, cols] += a.numpy()
        return grads / self.members, values / self.members

    def _aggregates(self, x: np.ndarray, agg: Aggregate) -> tuple[np.ndarray, np.ndarray]:
        """Mean over members of (A, S) [n, K] for one batch."""
        a = s = 0.0
        for i in range(len(self.models)):
            fn = self._aggregate_fn(i)
            for xa, aa, _ in self._views(x, agg):
                ai, si = fn(xa, aa.weights, aa.tracks)
                a, s = a + ai.numpy(), s + si.numpy()
        return a / self.members, s / self.members

    def aggregates(self, x, agg: Aggregate) -> tuple[np.ndarray, np.ndarray]:
        """Mean over members of the aggregate A and of the all-bin sum S, each [N, K]."""
        x = self._check(x)
        parts = [self._aggregates(x[lo : lo + self.batch_size], agg[lo : lo + self.batch_size])
                 for lo in range(0, len(x), self.batch_size)]
        return tuple(np.concatenate(p) for p in zip(*parts))

    def ism(self, x, agg: Aggregate, start=None, width: int = ISM_WIDTH,
            pseudo: float = 1.0) -> dict[str, np.ndarray]:
        """Saturation mutagenesis of positions start..start+width-1 of one-hot x [N, L, 4]
        (`start` per sequence or one; default centred): ``sum``, ``centre``, ``logfc``
        [N, W, 4, K] (module docstring), ``ref`` and ``ref_sum`` [N, K]."""
        x = self._check(x)
        n, length = x.shape[:2]
        start = np.broadcast_to(np.asarray((length - width) // 2 if start is None else start,
                                           np.int64), (n,))
        if width < 1 or (start < 0).any() or (start + width > length).any():
            raise SeqnnError(f"ISM window of {width} bp from {start.min()}: need it inside the "
                             f"{length} bp input; lower the ISM width")
        pos = start[:, None] + np.arange(width)  # [n, W]
        seq, j, b = np.nonzero(x[np.arange(n)[:, None], pos] == 0)  # the alternative bases
        ref_a, ref_s = self.aggregates(x, agg)
        alt_a = np.empty((len(seq), agg.tracks.shape[1]), np.float32)
        alt_s = np.empty_like(alt_a)
        for lo in range(0, len(seq), self.batch_size):
            r = slice(lo, lo + self.batch_size)
            xb, m, p = x[seq[r]], np.arange(len(seq[r])), pos[seq[r], j[r]]
            xb[m, p] = 0
            xb[m, p, b[r]] = 1
            alt_a[r], alt_s[r] = self._aggregates(xb, agg[seq[r]])
        out = {k: np.zeros((n, width, 4, alt_a.shape[1]), np.float32) for k in ISM_STATS}
        out["sum"][seq, j, b] = alt_s - ref_s[seq]
        out["centre"][seq, j, b] = alt_a - ref_a[seq]
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN: negative aggregates
            out["logfc"][seq, j, b] = np.log2((alt_a + pseudo) / (ref_a[seq] + pseudo))
        return {**out, "ref": ref_a, "ref_sum": ref_s}


def gradients(models, x, *, tracks=None, window=None, reduce: str = "sum", rc: bool = False,
              shifts: Sequence[int] = (0,), strand_pair: Sequence[int] | None = None,
              batch_size: int = 32) -> np.ndarray:
    """Gradients [N, L, 4, K] of the aggregate (`aggregate`) at one-hot x [N, L, 4], averaged
    over models, shifts and (with rc) strands."""
    interp = Interpreter(models, rc=rc, shifts=shifts, strand_pair=strand_pair,
                         batch_size=batch_size)
    return interp.gradients(x, interp.aggregate(len(x), tracks, window, reduce))[0]


def saturation_mutagenesis(models, x, *, start=None, width: int = ISM_WIDTH, tracks=None,
                           window=None, reduce: str = "sum", pseudo: float = 1.0,
                           rc: bool = False, shifts: Sequence[int] = (0,),
                           strand_pair: Sequence[int] | None = None,
                           batch_size: int = 32) -> dict[str, np.ndarray]:
    """ISM statistics [N, W, 4, K] of one-hot x [N, L, 4] (`Interpreter.ism`)."""
    interp = Interpreter(models, rc=rc, shifts=shifts, strand_pair=strand_pair,
                         batch_size=batch_size)
    return interp.ism(x, interp.aggregate(len(x), tracks, window, reduce), start, width, pseudo)


# ---------------------------------------------------------------------------------------------
# Regions


def _track_indices(tracks, identifiers: list[str]) -> np.ndarray:
    """Indices [K] of tracks given by identifier or index (None: all)."""
    if tracks is None:
        return np.arange(len(identifiers))
    items = [tracks] if isinstance(tracks, (str, int, np.integer)) else list(tracks)
    out = []
    for t in items:
        if isinstance(t, str) and t in identifiers:
            out.append(identifiers.index(t))
        elif not isinstance(t, str) and 0 <= int(t) < len(identifiers):
            out.append(int(t))
        else:
            raise SeqnnError(f"track {t!r} is not predicted; choose from "
                             f"{', '.join(identifiers[:10])} or an index below {len(identifiers)}")
    return np.array(out, np.int64)


def _regions(bed: str, sizes: dict[str, int], aliases, missing: str) -> tuple[pd.DataFrame, int]:
    """The BED's regions on the genome and how many others were skipped."""
    if missing not in MISSING:
        raise SeqnnError(f"missing {missing!r} is not one of {', '.join(MISSING)}")
    regions = read_regions(bed, sizes, aliases)
    raw = pd.read_csv(bed, sep="\t", header=None, comment="#", usecols=[0], dtype=str)[0]
    raw = raw[~raw.str.startswith(("track", "browser"))]
    skipped = len(raw) - len(regions)
    if skipped and missing == "error":
        absent = sorted(set(raw) - set(regions.bed_chrom))
        raise SeqnnError(f"{bed}: {skipped} region(s) on chromosome(s) absent from the FASTA "
                         f"({', '.join(absent[:5])}); fix the BED or skip them (missing=skip)")
    return regions, skipped


@dataclass
class _Setup:
    """What `gradient_maps` and `ism` share: models, regions, windows and aggregate."""

    ens: object
    interp: Interpreter
    regions: pd.DataFrame
    sizes: dict
    skipped: int
    starts: np.ndarray
    selected: np.ndarray
    windows: np.ndarray
    agg: Aggregate
    attrs: dict


def _setup(models, fasta, bed, *, fai, tracks, window, reduce, rc, shifts, batch_size, tss, head,
           aliases, missing, threads) -> _Setup:

    set_threads(threads)
    sizes = chrom_sizes(fasta, fai)
    regions, skipped = _regions(bed, sizes, aliases, missing)
    ens = load_ensemble(models, head)
    interp = Interpreter(ens.models, rc=rc, shifts=shifts, strand_pair=ens.strand_pair,
                         batch_size=batch_size)
    length, n = ens.seq_length, len(regions)
    centre = (np.where(regions.strand == "-", regions.end - 1, regions.start) if tss
              else (regions.start + regions.end) // 2)
    starts = np.asarray(centre, np.int64) - length // 2
    selected = _track_indices(tracks, ens.identifiers)
    per_track = selected
    if tss:
        per_track = strand_tracks(selected, regions.strand.to_numpy(), ens.strand_pair)
        if window is None or np.ndim(window) == 0:
            window = tss_windows(np.full(n, length // 2), ens.target_length, ens.pool_width,
                                 ens.crop_bp, None if window is None else int(window))
    agg = interp.aggregate(n, per_track, window, reduce)
    windows = bin_windows(n, ens.target_length, window)
    attrs = {"reduce": reduce, "rc": bool(rc), "shifts": json.dumps(list(interp.shifts)),
             "members": interp.members, "models": json.dumps([str(p) for p in ens.paths]),
             "tss": bool(tss), "seq_length": length, "target_length": ens.target_length,
             "pool_width": ens.pool_width, "crop_bp": ens.crop_bp, "skipped": skipped}
    return _Setup(ens, interp, regions, sizes, skipped, starts, selected, windows, agg, attrs)


def _write_table(f, s: _Setup, start: np.ndarray, end: np.ndarray) -> None:
    f.create_dataset("chrom", data=s.regions.bed_chrom.to_numpy().astype("S"))
    f.create_dataset("name", data=s.regions.name.to_numpy().astype("S"))
    f.create_dataset("strand", data=s.regions.strand.to_numpy().astype("S"))
    f.create_dataset("start", data=np.asarray(start, np.int64))
    f.create_dataset("end", data=np.asarray(end, np.int64))
    f.create_dataset("identifiers", data=np.array(s.ens.identifiers)[s.selected].astype("S"))
    f.create_dataset("track_index", data=s.agg.tracks.astype(np.int64))
    f.create_dataset("bin_window", data=s.windows)
    f.attrs.update(s.attrs)


def _batches(fasta, fai, chroms, starts, length, batch_size) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, one-hot float32 [n, length, 4]) of windows, N past chromosome ends."""
    with open_fasta(fasta, fai) as fa:
        for lo in range(0, len(starts), batch_size):
            rows = slice(lo, min(lo + batch_size, len(starts)))
            codes = [fetch_codes(fa, c, int(s), int(s) + length)
                     for c, s in zip(chroms[rows], starts[rows])]
            yield rows, one_hot(np.stack(codes))


def gradient_maps(models: Sequence[str], fasta: str, bed: str, out_h5: str, *,
                  fai: str | None = None, tracks=None, window=None, reduce: str = "sum",
                  rc: bool = True, shifts: Sequence[int] = (0,), batch_size: int = 8,
                  bigwig_dir: str | None = None, tss: bool = False, dtype: str = "float16",
                  head: int | None = None, aliases: dict[str, str] | None = None,
                  missing: str = "skip", threads: int | None = None) -> dict:
    """Gradient maps of the BED regions' windows into HDF5 `out_h5` (`GRADIENT_LAYOUT`), and
    with `bigwig_dir` one contribution-score bigWig per selected track ({identifier}.bw).

    `tracks`: identifiers or indices (None: all); `window`: bins as `bin_windows` (with `tss`, a
    width around the TSS bin); `tss`: centre on TSSs and aggregate each gene's strand's track.
    Returns a summary (regions, skipped, tracks, members, seconds, maps_per_s)."""
    s = _setup(models, fasta, bed, fai=fai, tracks=tracks, window=window, reduce=reduce, rc=rc,
               shifts=shifts, batch_size=batch_size, tss=tss, head=head, aliases=aliases,
               missing=missing, threads=threads)
    n, length, k = len(s.regions), s.ens.seq_length, len(s.selected)
    tic = time.perf_counter()
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        _write_table(f, s, s.starts, s.starts + length)
        f.attrs["dtype"] = np.dtype(dtype).name
        seqs = f.create_dataset("seqs", (n, length, 4), np.uint8, chunks=(1, length, 4))
        grads = f.create_dataset("grads", (n, length, 4, k), dtype, chunks=(1, length, 4, k))
        values = f.create_dataset("aggregate", (n, k), np.float32)
        for rows, x in _batches(fasta, fai, s.regions.chrom.to_numpy(), s.starts, length,
                                batch_size):
            g, a = s.interp.gradients(x, s.agg[rows])
            seqs[rows], grads[rows], values[rows] = x.astype(np.uint8), g.astype(dtype), a
        seconds = time.perf_counter() - tic
        if bigwig_dir:
            names = [aliases.get(c, c) if aliases else c for c in s.regions.chrom]
            write_contribution_bigwigs(f, bigwig_dir, {c: (aliases or {}).get(c, c)
                                                       for c in s.sizes}, s.sizes, names)
    ids = [str(t) for t in np.array(s.ens.identifiers)[s.selected]]
    log.info("%s: gradients of %d regions x %d tracks (%d members) in %.1f s; %d skipped",
             out_h5, n, k, s.interp.members, seconds, s.skipped)
    return {"regions": n, "skipped": s.skipped, "tracks": ids, "members": s.interp.members,
            "seconds": round(seconds, 2), "maps_per_s": round(n * k / max(seconds, 1e-9), 2)}


def write_contribution_bigwigs(f, out_dir: str, names: dict[str, str], sizes: dict[str, int],
                               chroms: Sequence[str] | None = None) -> list[str]:
    """Contribution-score bigWigs {identifier}.bw in `out_dir` from a gradients HDF5 `f` (a path
    or an open file): per base, input x centred gradient, from the window whose centre is
    nearest (module docstring). `sizes`: FASTA chromosome sizes in order; `names`: FASTA name ->
    bigWig name; `chroms`: each region's bigWig chromosome (default: the file's `chrom`)."""
    if not isinstance(f, h5py.File):
        with h5py.File(f, "r") as opened:
            return write_contribution_bigwigs(opened, out_dir, names, sizes, chroms)

    ids = [i.decode() for i in f["identifiers"][:]]
    chroms = np.asarray(f["chrom"][:].astype(str) if chroms is None else chroms)
    starts, length = f["start"][:], f["seqs"].shape[1]
    size_of = {names[c]: n for c, n in sizes.items()}
    rank = {names[c]: i for i, c in enumerate(sizes)}
    order = np.lexsort((np.arange(len(starts)), starts, [rank[c] for c in chroms]))
    paths = [os.path.join(out_dir, f"{i}.bw") for i in ids]
    with ExitStack() as stack:
        bws = []
        for path in paths:
            bw = pyBigWig.open(stack.enter_context(atomic_path(path)), "w")
            stack.callback(bw.close)  # closed before its rename (callbacks run first)
            bw.addHeader([(names[c], n) for c, n in sizes.items()], maxZooms=10)
            bws.append(bw)
        for chrom in pd.unique(chroms[order]):
            rows = order[chroms[order] == chrom]
            s = starts[rows]
            keep = np.concatenate([[True], s[1:] != s[:-1]])  # identical windows: the first
            rows, s = rows[keep], s[keep]
            # base p is nearer window i's centre than window i+1's iff p < hi_i
            hi = np.concatenate([(s[:-1] + s[1:] + length - 1) // 2 + 1, [s[-1] + length]])
            lo = np.concatenate([[s[0]], hi[:-1]])
            lo, hi = np.maximum(np.maximum(lo, s), 0), np.minimum(np.minimum(hi, s + length),
                                                                  size_of[chrom])
            for row, start, a, b in zip(rows, s, lo, hi):
                if b <= a:
                    continue
                x, g = f["seqs"][row], f["grads"][row].astype(np.float32)
                contrib = input_x_gradient(x[None], g[None])[0].astype(np.float64)  # [L, K]
                for bw, values in zip(bws, contrib[a - start : b - start].T):
                    bw.addEntries(chrom, int(a), values=np.ascontiguousarray(values), span=1,
                                  step=1)
    log.info("%s: contribution bigWigs of %s", out_dir, ", ".join(ids))
    return paths


def ism(models: Sequence[str], fasta: str, bed: str, out_h5: str, *, window_bp: int = ISM_WIDTH,
        fai: str | None = None, tracks=None, window=None, reduce: str = "sum",
        pseudo: float = 1.0, rc: bool = True, shifts: Sequence[int] = (0,), batch_size: int = 32,
        tss: bool = False, head: int | None = None, aliases: dict[str, str] | None = None,
        missing: str = "skip", threads: int | None = None) -> dict:
    """Saturation mutagenesis of the centre `window_bp` of each BED region's window (its TSS with
    `tss`) into HDF5 `out_h5` (`ISM_LAYOUT`); options as `gradient_maps`. Returns a summary
    (regions, skipped, tracks, members, substitutions, seconds, substitutions_per_s)."""
    s = _setup(models, fasta, bed, fai=fai, tracks=tracks, window=window, reduce=reduce, rc=rc,
               shifts=shifts, batch_size=batch_size, tss=tss, head=head, aliases=aliases,
               missing=missing, threads=threads)
    n, length, k = len(s.regions), s.ens.seq_length, len(s.selected)
    offset = (length - window_bp) // 2
    tic, subs = time.perf_counter(), 0
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        _write_table(f, s, s.starts + offset, s.starts + offset + window_bp)
        f.create_dataset("seq_start", data=s.starts)
        f.attrs.update({"pseudo": pseudo, "width": window_bp})
        seqs = f.create_dataset("seqs", (n, window_bp, 4), np.uint8)
        stats = {key: f.create_dataset(key, (n, window_bp, 4, k), np.float32)
                 for key in ISM_STATS}
        refs = {key: f.create_dataset(key, (n, k), np.float32) for key in ("ref", "ref_sum")}
        for rows, x in _batches(fasta, fai, s.regions.chrom.to_numpy(), s.starts, length,
                                batch_size):
            out = s.interp.ism(x, s.agg[rows], offset, window_bp, pseudo)
            ref = x[:, offset : offset + window_bp]
            seqs[rows] = ref.astype(np.uint8)
            subs += int((ref == 0).sum())
            for key, ds in {**stats, **refs}.items():
                ds[rows] = out[key]
    seconds = time.perf_counter() - tic
    ids = [str(t) for t in np.array(s.ens.identifiers)[s.selected]]
    log.info("%s: ISM of %d regions x %d bp, %d substitutions x %d members in %.1f s; "
             "%d skipped", out_h5, n, window_bp, subs, s.interp.members, seconds, s.skipped)
    return {"regions": n, "skipped": s.skipped, "tracks": ids, "members": s.interp.members,
            "substitutions": subs, "seconds": round(seconds, 2),
            "substitutions_per_s": round(subs / max(seconds, 1e-9), 2)}
