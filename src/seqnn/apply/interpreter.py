"""Gradients and in-silico saturation mutagenesis (ISM) of model predictions, averaged over an
ensemble's members (the aggregate explained and the scores: `seqnn.apply.attribution`).

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

ISM. Each position of a W bp window is set to each base other than the reference (all four at
N): 3W mutants per sequence, built by fancy indexing and predicted in batches across sequences.
Per member and sequence, two aggregates are kept, S = sum_b y[b, t] over all bins and A (above);
both are averaged over members, then per mutation: ``sum`` = S_alt - S_ref, ``centre`` =
A_alt - A_ref and ``logfc`` = log2((A_alt + c) / (A_ref + c)) (c: pseudocount; aggregates are
assumed non-negative, as coverage is). Arrays are [N, W, 4, K], 0 at the reference base.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from seqnn import SeqnnError
from seqnn.apply.attribution import Aggregate, aggregate
from seqnn.apply.ensemble import reverse_complement_one_hot, shift_one_hot

ISM_STATS = ("sum", "centre", "logfc")
TRACK_CHUNK = 8  # selected tracks per forward pass of a gradient call
ISM_WIDTH = 200  # bp mutated by default, centred in the window


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
                return tf.stack([tape.gradient(part, x, unconnected_gradients=zero)
                                 for part in parts], -1), a

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
        return tuple(np.concatenate(column) for column in zip(*parts))

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
            xb, m, at = x[seq[r]], np.arange(len(seq[r])), pos[seq[r], j[r]]
            xb[m, at] = 0
            xb[m, at, b[r]] = 1
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
    """Gradients [N, L, 4, K] of the aggregate at one-hot x [N, L, 4], averaged over models,
    shifts and (with rc) strands.

    Args:
        models: one-head models of one geometry.
        x: one-hot sequences [N, L, 4].
        tracks, window, reduce: the aggregate (`attribution.aggregate`).
        rc, shifts: augmentations averaged over.
        strand_pair: each track's opposite-strand track (default: itself).
        batch_size: sequences per batch.
    """
    interp = Interpreter(models, rc=rc, shifts=shifts, strand_pair=strand_pair,
                         batch_size=batch_size)
    return interp.gradients(x, interp.aggregate(len(x), tracks, window, reduce))[0]


def saturation_mutagenesis(models, x, *, start=None, width: int = ISM_WIDTH, tracks=None,
                           window=None, reduce: str = "sum", pseudo: float = 1.0,
                           rc: bool = False, shifts: Sequence[int] = (0,),
                           strand_pair: Sequence[int] | None = None,
                           batch_size: int = 32) -> dict[str, np.ndarray]:
    """ISM statistics [N, W, 4, K] of one-hot x [N, L, 4] (`Interpreter.ism`).

    Args:
        start: the first mutated position, per sequence or one (default: centred).
        width: the positions mutated (W).
        pseudo: the pseudocount of ``logfc``.
        others: as `gradients`.
    """
    interp = Interpreter(models, rc=rc, shifts=shifts, strand_pair=strand_pair,
                         batch_size=batch_size)
    return interp.ism(x, interp.aggregate(len(x), tracks, window, reduce), start, width, pseudo)
