"""Per-track accuracy over all positions and sequences of ``[..., tracks]`` arrays.

Streaming Keras metrics (float64 accumulators; for ``model.compile`` or any number of
``update_state`` batches) and numpy functions on whole arrays, returning one value per track.
Undefined values are NaN: Pearson r and R² of a track with constant targets, AUROC of a track
lacking positives or negatives, AUPRC of one lacking positives. Pearson r of a track with
constant predictions is 0. A variance below 1e-12 times the sum of squares counts as zero.
``summarize=True`` averages the per-track values over the tracks where they are defined.
"""

import keras
import numpy as np
from keras import ops

_TOL = 1e-12


class _TrackMetric(keras.metrics.Metric):
    """Base class: per-track accumulators of dtype ``dtype``, optional mean over tracks."""

    def __init__(self, num_targets, summarize=True, name=None, dtype="float64"):
        super().__init__(name=name, dtype=dtype)
        self.num_targets = num_targets
        self.summarize = summarize

    def _zeros(self, name, rows=()):
        return self.add_variable((*rows, self.num_targets), "zeros", dtype=self.dtype, name=name)

    def _flatten(self, y_true, y_pred, sample_weight):
        """``[N, tracks]`` views of targets, predictions and weights (broadcast, default 1)."""
        y_true = ops.cast(y_true, self.dtype)
        y_pred = ops.cast(y_pred, self.dtype)
        if sample_weight is None:
            weight = ops.ones_like(y_true)
        else:
            weight = ops.cast(sample_weight, self.dtype)
            for _ in range(len(y_true.shape) - len(weight.shape)):
                weight = ops.expand_dims(weight, -1)
            weight = ops.broadcast_to(weight, ops.shape(y_true))
        return [ops.reshape(x, (-1, self.num_targets)) for x in (y_true, y_pred, weight)]

    def result(self):
        values = self._per_track()
        if not self.summarize:
            return values
        defined = ops.logical_not(ops.isnan(values))
        return ops.sum(ops.where(defined, values, 0)) / ops.sum(ops.cast(defined, self.dtype))

    def get_config(self):
        return {
            **super().get_config(),
            "num_targets": self.num_targets,
            "summarize": self.summarize,
        }


class _Moments(_TrackMetric):
    """Accumulates weighted n, sums, squares and cross products of targets and predictions."""

    def __init__(self, num_targets, summarize=True, name=None, dtype="float64"):
        super().__init__(num_targets, summarize, name, dtype)
        names = ("count", "true_sum", "pred_sum", "true_sumsq", "pred_sumsq", "product")
        self._sums = [self._zeros(n) for n in names]

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p, w = self._flatten(y_true, y_pred, sample_weight)
        moments = (w, w * t, w * p, w * t * t, w * p * p, w * t * p)
        for var, x in zip(self._sums, moments, strict=True):
            var.assign_add(ops.sum(x, axis=0))


@keras.saving.register_keras_serializable(package="seqnn")
class PearsonR(_Moments):
    """Streaming per-track Pearson correlation (or its mean over tracks when ``summarize``)."""

    def __init__(self, num_targets, summarize=True, name="pearsonr", dtype="float64"):
        super().__init__(num_targets, summarize, name, dtype)

    def _per_track(self):
        n, st, sp, stt, spp, stp = (ops.convert_to_tensor(v) for v in self._sums)
        var_t, var_p = stt - st * st / n, spp - sp * sp / n
        r = (stp - st * sp / n) / ops.sqrt(var_t * var_p)
        r = ops.where(var_p <= _TOL * spp, 0.0, r)
        return ops.where(var_t <= _TOL * stt, np.nan, r)


@keras.saving.register_keras_serializable(package="seqnn")
class R2(_Moments):
    """Streaming per-track coefficient of determination ``1 - SS_res / SS_tot`` (true mean)."""

    def __init__(self, num_targets, summarize=True, name="r2", dtype="float64"):
        super().__init__(num_targets, summarize, name, dtype)

    def _per_track(self):
        n, st, _, stt, spp, stp = (ops.convert_to_tensor(v) for v in self._sums)
        ss_tot = stt - st * st / n
        r2 = 1 - (stt - 2 * stp + spp) / ss_tot
        return ops.where(ss_tot <= _TOL * stt, np.nan, r2)


class _BinnedCurve(_TrackMetric):
    """Per-track histograms of predictions in ``num_bins`` equal bins of [0, 1] (values outside
    go to the end bins), weighted by target (positives) and 1 - target (negatives).

    The curve is exact for the binned scores: predictions sharing a bin count as ties. Memory is
    2 x num_bins x tracks float64 values.
    """

    def __init__(self, num_targets, num_bins=1000, summarize=True, name=None, dtype="float64"):
        super().__init__(num_targets, summarize, name, dtype)
        self.num_bins = num_bins
        self._pos = self._zeros("positives", (num_bins,))
        self._neg = self._zeros("negatives", (num_bins,))

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p, w = self._flatten(y_true, y_pred, sample_weight)
        bins = ops.cast(ops.clip(ops.floor(p * self.num_bins), 0, self.num_bins - 1), "int32")
        ids = ops.reshape(bins * self.num_targets + ops.arange(self.num_targets), (-1,))
        size = self.num_bins * self.num_targets
        for var, x in ((self._pos, w * t), (self._neg, w * (1 - t))):
            counts = ops.segment_sum(ops.reshape(x, (-1,)), ids, num_segments=size)
            var.assign_add(ops.reshape(counts, (self.num_bins, self.num_targets)))

    def _cumulative(self):
        """True and false positives at each threshold, highest first, with a leading zero row."""
        zero = ops.zeros((1, self.num_targets), self.dtype)
        return [
            ops.concatenate([zero, ops.cumsum(ops.flip(v, axis=0), axis=0)], axis=0)
            for v in (self._pos, self._neg)
        ]

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


@keras.saving.register_keras_serializable(package="seqnn")
class AUROC(_BinnedCurve):
    """Streaming per-track area under the ROC curve (trapezoids; ties count one half)."""

    def __init__(self, num_targets, num_bins=1000, summarize=True, name="auroc", dtype="float64"):
        super().__init__(num_targets, num_bins, summarize, name, dtype)

    def _per_track(self):
        tp, fp = self._cumulative()
        tpr, fpr = tp / tp[-1], fp / fp[-1]
        return ops.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2, axis=0)


@keras.saving.register_keras_serializable(package="seqnn")
class AUPRC(_BinnedCurve):
    """Streaming per-track area under the precision-recall curve as average precision:
    the sum over thresholds of recall increase x precision (no interpolation)."""

    def __init__(self, num_targets, num_bins=1000, summarize=True, name="auprc", dtype="float64"):
        super().__init__(num_targets, num_bins, summarize, name, dtype)

    def _per_track(self):
        tp, fp = self._cumulative()
        precision = ops.divide_no_nan(tp[1:], tp[1:] + fp[1:])
        return ops.sum((tp[1:] - tp[:-1]) / tp[-1] * precision, axis=0)


def _columns(x):
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1])


def _centred(x):
    """Per-track centred ``[N, tracks]`` values, their sum of squares and a constant-track mask."""
    x = _columns(x)
    c = x - x.mean(axis=0)
    ss = (c * c).sum(axis=0)
    return c, ss, ss <= _TOL * (x * x).sum(axis=0)


def pearsonr_np(y_true, y_pred):
    """Per-track Pearson r of ``[..., tracks]`` arrays, as :class:`PearsonR`."""
    t, ss_t, const_t = _centred(y_true)
    p, ss_p, const_p = _centred(y_pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (t * p).sum(axis=0) / np.sqrt(ss_t * ss_p)
    return np.where(const_t, np.nan, np.where(const_p, 0.0, r))


def r2_np(y_true, y_pred):
    """Per-track R² of ``[..., tracks]`` arrays, as :class:`R2`."""
    _, ss_tot, const = _centred(y_true)
    ss_res = ((_columns(y_true) - _columns(y_pred)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(const, np.nan, 1 - ss_res / ss_tot)


def _curves(y_true, y_pred):
    """Per track: cumulative true and false positives at each distinct score, highest first."""
    for t, p in zip(_columns(y_true).T, _columns(y_pred).T, strict=True):
        _, group = np.unique(-p, return_inverse=True)
        yield np.cumsum(np.bincount(group, weights=t)), np.cumsum(np.bincount(group, weights=1 - t))


def auroc_np(y_true, y_pred):
    """Exact per-track AUROC (ties count one half) of ``[..., tracks]`` arrays."""
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for tp, fp in _curves(y_true, y_pred):
            tpr, fpr = np.append(0, tp) / tp[-1], np.append(0, fp) / fp[-1]
            out.append(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return np.array(out)


def auprc_np(y_true, y_pred):
    """Exact per-track average precision of ``[..., tracks]`` arrays (as :class:`AUPRC`)."""
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for tp, fp in _curves(y_true, y_pred):
            out.append(np.sum(np.diff(np.append(0, tp)) / tp[-1] * tp / (tp + fp)))
    return np.array(out)
