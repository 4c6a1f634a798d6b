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

Members also include Monte-Carlo dropout passes (`mc_n`, `seqnn.apply.dropout`; with more than
TRACK_CHUNK tracks each chunk of tracks draws its own masks). The statistic differentiated may
undo the coverage transform and take a log or a ratio (`attribution.Statistic`).

Hidden layers. With `layer`, gradients are taken with respect to that layer's activations
h [L_h, C] instead of the input (Basenji's `build_grads(layers)`), and `hidden` averages the
activations themselves. The reverse complement's h is mapped back by reversing its length
(channels are features, not bases); a shift of s bp moves h by round(s / r) positions, r = L /
L_h the bp per position (exact where r divides s).

ISM. Each position of a W bp window is set to each base other than the reference (all four at
N): 3W mutants per sequence, built by fancy indexing and predicted in batches across sequences.
Per member and sequence, two aggregates are kept, S = sum_b y[b, t] over all bins and A (above);
both are averaged over members, then per mutation: ``sum`` = S_alt - S_ref, ``centre`` =
A_alt - A_ref and ``logfc`` = log2((A_alt + c) / (A_ref + c)) (c: pseudocount; aggregates are
assumed non-negative, as coverage is). Arrays are [N, W, 4, K], 0 at the reference base.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from seqnn import SeqnnError
from seqnn.apply.attribution import Aggregate, Statistic, aggregate
from seqnn.apply.dropout import mc_models
from seqnn.apply.ensemble import reverse_complement_one_hot, shift_one_hot

ISM_STATS = ("sum", "centre", "logfc")
TRACK_CHUNK = 8  # selected tracks per forward pass of a gradient call
ISM_WIDTH = 200  # bp mutated by default, centred in the window


class Interpreter:
    """Gradients and ISM of models of one geometry (e.g. the fold models), averaged over shifts
    and strands. Models map [B, L, 4] to [B, T_len, T] (one head); `strand_pair[t]` is track
    t's opposite-strand track (default: every track its own).

    Args:
        models: one-head models of one geometry.
        rc, shifts: augmentations averaged over.
        strand_pair: each track's opposite-strand track.
        batch_size: sequences per batch.
        mc_n, seed: Monte-Carlo dropout passes per augmentation (0: none) and their seed.
        statistic: what gradients are taken of (default: the aggregate).
        layer: the layer whose activations gradients are taken with respect to (None: input).
    """

    def __init__(self, models, *, rc: bool = False, shifts: Sequence[int] = (0,),
                 strand_pair: Sequence[int] | None = None, batch_size: int = 32,
                 mc_n: int = 0, seed: int = 0, statistic: Statistic | None = None,
                 layer: str | None = None):
        self.models, self.passes = mc_models(list(models), mc_n, seed)
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
        self.statistic = statistic or Statistic()
        self._untransform = self._untransform_params(self.statistic)
        self.layer, self._fns = layer, {}
        self.grad_shape = (self.seq_length, 4) if layer is None else tuple(
            self._layer_model(0).output_shape[0][1:])

    def _untransform_params(self, stat: Statistic):
        if stat.untransform is None:
            return None
        params = {k: np.asarray(v, np.float32) for k, v in stat.untransform.items()}
        if any(v.shape != (self.n_tracks,) for v in params.values()):
            raise SeqnnError(f"untransform: need one scale, clip_soft and power per track "
                             f"({self.n_tracks}); give the models' track sheet")
        return {k: tf.constant(v) for k, v in params.items()}

    def _layer_model(self, i: int):
        """Model i mapping x to (the layer's activations, the prediction)."""
        model = self.models[i]
        try:
            h = model.get_layer(self.layer).output
        except ValueError:
            names = ", ".join(lay.name for lay in model.layers)
            raise SeqnnError(f"layer {self.layer!r} is not in the model; choose one of "
                             f"{names}") from None
        return keras.Model(model.inputs, [h, model.outputs[0]])

    @property
    def members(self) -> int:
        return len(self.models) * len(self.shifts) * (2 if self.rc else 1) * self.passes

    def aggregate(self, n: int, tracks=None, window=None, reduce: str = "sum",
                  denominator=None) -> Aggregate:
        """The aggregate (`attribution.aggregate`); the ``ratio`` statistic's denominator
        window defaults to all bins."""
        if denominator is None and self.statistic.kind == "ratio":
            denominator = (0, self.target_length)
        return aggregate(n, self.target_length, self.n_tracks, tracks, window, reduce,
                         denominator)

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.seq_length, 4):
            raise SeqnnError(f"sequences {x.shape}: the models read one-hot "
                             f"[batch, {self.seq_length}, 4]; give windows of that length")
        return x

    def _back(self, g: np.ndarray, shift: int, rc: bool) -> np.ndarray:
        """A gradient (or activation) of the view (shift, rc) mapped to the forward input."""
        if self.layer is None:
            return shift_one_hot(reverse_complement_one_hot(g) if rc else g, -shift)
        moved = int(round(shift * self.grad_shape[0] / self.seq_length))
        return shift_one_hot(np.ascontiguousarray(g[:, ::-1]) if rc else g, -moved)

    def _views(self, x: np.ndarray, agg: Aggregate) -> Iterator[tuple]:
        """(x', aggregate', back) per (shift, strand); back maps a gradient w.r.t. x' to x."""
        mirrored = agg.mirrored(self.strand_pair) if self.rc else None
        for s in self.shifts:
            xs = shift_one_hot(x, s)
            yield xs, agg, lambda g, s=s: self._back(g, s, False)
            if self.rc:
                yield (np.ascontiguousarray(reverse_complement_one_hot(xs)), mirrored,
                       lambda g, s=s: self._back(g, s, True))

    def _specs(self, k):
        return [tf.TensorSpec([None, self.seq_length, 4], tf.float32),
                tf.TensorSpec([None, self.target_length], tf.float32),
                tf.TensorSpec([None, k], tf.int32),
                tf.TensorSpec([None, self.target_length], tf.float32)]

    def _stat(self, y, w, tracks, w_den):
        """The statistic [B, k] of predictions y [B, T_len, T] (`attribution.Statistic`)."""
        y = tf.gather(tf.cast(y, tf.float32), tracks, axis=2, batch_dims=1)  # [B, T_len, k]
        if self._untransform is not None:
            p = {key: tf.gather(v, tracks)[:, None, :] for key, v in self._untransform.items()}
            excess = tf.maximum(y - p["clip_soft"], 0.0)  # soft clip undone: e -> e^2 + 2e
            y = y + tf.square(excess) + excess
            y = (tf.pow(tf.maximum(1 + y, 0.0), 1 / p["power"]) - 1) / p["scale"]
        a = tf.einsum("bt,btk->bk", w, y)
        stat = self.statistic
        if stat.kind == "log":
            return tf.math.log(a + stat.pseudo)
        if stat.kind == "ratio":
            return tf.math.log((a + stat.pseudo) / (tf.einsum("bt,btk->bk", w_den, y)
                                                    + stat.pseudo))
        return a

    def _gradient_fn(self, i: int, k: int):
        """Compiled (x, weights, tracks [B, k], denominator weights) -> (gradients
        [B, *grad_shape, k] w.r.t. the input or the layer, statistics [B, k])."""
        if ("grad", i, k) not in self._fns:

            model = self.models[i] if self.layer is None else self._layer_model(i)

            def fn(x, w, tracks, w_den):
                with tf.GradientTape(persistent=k > 1) as tape:
                    tape.watch(x)
                    h, y = (x, model(x, training=False)) if self.layer is None else model(x)
                    a = self._stat(y, w, tracks, w_den)
                    parts = [a[:, j] for j in range(k)]
                zero = tf.UnconnectedGradients.ZERO
                return tf.stack([tape.gradient(part, h, unconnected_gradients=zero)
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

            self._fns["agg", i] = tf.function(fn, input_signature=self._specs(None)[:3])
        return self._fns["agg", i]

    def member_gradients(self, x, agg: Aggregate) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each member's gradients [n, *grad_shape, K] and statistics [n, K] of one batch, in
        member order (model, shift, strand, pass)."""
        x = self._check(x)
        k = agg.tracks.shape[1]
        for i in range(len(self.models)):
            for xa, aa, back in self._views(x, agg):
                for _ in range(self.passes):
                    g = np.zeros((len(x), *self.grad_shape, k), np.float32)
                    values = np.zeros((len(x), k), np.float32)
                    for c0 in range(0, k, TRACK_CHUNK):
                        cols = slice(c0, min(c0 + TRACK_CHUNK, k))
                        fn = self._gradient_fn(i, cols.stop - cols.start)
                        gi, ai = fn(xa, aa.weights, np.ascontiguousarray(aa.tracks[:, cols]),
                                    aa.denominator_weights)
                        g[..., cols], values[:, cols] = back(gi.numpy()), ai.numpy()
                    yield g, values

    def gradients(self, x, agg: Aggregate) -> tuple[np.ndarray, np.ndarray]:
        """Mean over members of the gradients [N, *grad_shape, K] of the statistic of `agg` at
        one-hot x [N, L, 4], and of the statistics [N, K]."""
        x = self._check(x)
        n, k = len(x), agg.tracks.shape[1]
        grads = np.zeros((n, *self.grad_shape, k), np.float32)
        values = np.zeros((n, k), np.float32)
        for lo in range(0, n, self.batch_size):
            rows = slice(lo, lo + self.batch_size)
            for g, a in self.member_gradients(x[rows], agg[rows]):
                grads[rows] += g
                values[rows] += a
        return grads / self.members, values / self.members

    def hidden(self, x) -> np.ndarray:
        """Mean over members of the layer's activations [N, *grad_shape] at x, mapped back."""
        if self.layer is None:
            raise SeqnnError("hidden: name the layer whose activations are wanted (layer)")
        x, out = self._check(x), np.zeros((len(x), *self.grad_shape), np.float32)
        agg = self.aggregate(len(x))
        for lo in range(0, len(x), self.batch_size):
            rows = slice(lo, lo + self.batch_size)
            for i in range(len(self.models)):
                model = self._fns.setdefault(("hidden", i), tf.function(
                    self._layer_model(i), reduce_retracing=True))
                for xa, _, back in self._views(x[rows], agg[rows]):
                    for _ in range(self.passes):
                        out[rows] += back(model(xa)[0].numpy())
        return out / self.members

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
              batch_size: int = 32, denominator=None, **options) -> np.ndarray:
    """Gradients [N, L, 4, K] of the aggregate at one-hot x [N, L, 4], averaged over models,
    shifts and (with rc) strands.

    Args:
        models: one-head models of one geometry.
        x: one-hot sequences [N, L, 4].
        tracks, window, reduce: the aggregate (`attribution.aggregate`).
        rc, shifts: augmentations averaged over.
        strand_pair: each track's opposite-strand track (default: itself).
        batch_size: sequences per batch.
        denominator: the ``ratio`` statistic's window (as `window`).
        **options: `Interpreter`'s mc_n, seed, statistic and layer.
    """
    interp = Interpreter(models, rc=rc, shifts=shifts, strand_pair=strand_pair,
                         batch_size=batch_size, **options)
    agg = interp.aggregate(len(x), tracks, window, reduce, denominator)
    return interp.gradients(x, agg)[0]


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
