"""Streaming accumulation of evaluation statistics over batches of predictions and targets
(`seqnn.apply.evaluate`; the metrics are described in `seqnn.apply.accuracy`)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import tensorflow as tf

from seqnn.apply.accuracy import METRICS, call_peaks, columns, ranks
from seqnn.data.coverage import track_untransform
from seqnn.model.metrics import R2, PearsonR, auprc_np, auroc_np, pearsonr_np


def spearmanr_np(y_true, y_pred) -> np.ndarray:
    """Per-track Spearman r of ``[..., tracks]`` arrays (average ranks for ties)."""
    return pearsonr_np(ranks(columns(y_true)), ranks(columns(y_pred)))


class Accumulator:
    """Per-track statistics of a stream of (prediction, target) batches ``[B, bins, tracks]``.

    Args:
        tracks: the number of tracks.
        sheet: the track sheet (None: no untransformed metrics).
        sample_rate: the fraction of bins kept for Spearman r and AUROC/AUPRC.
        seed: of the sample.
        n_loci: the best and the worst windows kept as examples, each.
        asked: sequence index -> region text of the windows kept besides.
        tss_plan: sequence index -> [(region, bin0, bin1)] of the TSS regions.
        tss_regions: the number of TSS regions.
    """

    def __init__(self, tracks, sheet, sample_rate, seed, n_loci, asked, tss_plan, tss_regions):
        self.untransform = None if sheet is None else track_untransform(sheet)
        self.rate = sample_rate
        self.rng = np.random.default_rng(seed)
        scales = ("", "_raw") if sheet is not None else ("",)
        self.moments = {f"{name}{s}": cls(tracks, summarize=False)
                        for s in scales for name, cls in (("pearsonr", PearsonR), ("r2", R2))}
        self._update_moments = tf.function(self._moments_step, reduce_retracing=True)
        self.binary = np.ones(tracks, dtype=bool)
        self.target_sum = np.zeros(tracks)
        self.count = 0
        self.sample = ([], [])
        self.n_loci, self.asked = n_loci, asked
        self.ranked, self.kept = [], {}
        self.tss_plan = tss_plan
        self.tss = np.zeros((2, tss_regions, tracks))
        self.seen = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        raw_pred, raw_target = pred, target  # no sheet: shown as stored, no *_raw metrics
        if self.untransform is not None:
            raw_pred, raw_target = self.untransform(pred), self.untransform(target)
        self._update_moments(target, pred, raw_target, raw_pred)
        self.binary &= np.all((target == 0) | (target == 1), axis=(0, 1))
        self.target_sum += target.sum(axis=(0, 1), dtype=np.float64)
        self.count += target.shape[0] * target.shape[1]
        keep = self.rng.random(target.shape[:2]) < self.rate
        self.sample[0].append(pred[keep])
        self.sample[1].append(target[keep])
        with warnings.catch_warnings():  # a sequence with constant targets has no r
            warnings.simplefilter("ignore", RuntimeWarning)
            seq_r = [np.nanmean(pearsonr_np(t, y)) for t, y in zip(target, pred)]
        for b, r in enumerate(seq_r):
            i = self.seen + b
            entry = (float(r), i, raw_pred[b].copy(), raw_target[b].copy())
            if i in self.asked:
                self.kept[i] = entry
            if math.isfinite(r):
                self.ranked.append(entry)
            for region, b0, b1 in self.tss_plan.get(i, ()):
                self.tss[:, region] = (raw_pred[b, b0:b1].sum(0), raw_target[b, b0:b1].sum(0))
        self.ranked.sort(key=lambda e: e[0])
        if len(self.ranked) > 2 * self.n_loci:
            self.ranked = self.ranked[: self.n_loci] + self.ranked[-self.n_loci :]
        self.seen += target.shape[0]

    def _moments_step(self, target, pred, raw_target, raw_pred):
        for name, metric in self.moments.items():
            raw = name.endswith("_raw")
            metric.update_state(raw_target if raw else target, raw_pred if raw else pred)

    def loci(self) -> list[tuple[str, tuple]]:
        """(reason, entry) of the best and worst windows, then those asked for."""
        n = min(self.n_loci, len(self.ranked) // 2)
        best = [("best", e) for e in self.ranked[::-1][:n]]
        worst = [("worst", e) for e in self.ranked[:n]]
        return best + worst + [(f"asked {self.asked[i]}", e) for i, e in sorted(self.kept.items())]

    def metrics(self, peaks: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        """Per-track metrics table, and the sample's predictions, targets and AUC labels."""
        tracks = len(self.binary)
        table = pd.DataFrame({name: np.full(tracks, np.nan) for name in METRICS})
        for name, metric in self.moments.items():
            table[name] = np.asarray(metric.result(), dtype=np.float64)
        pred = np.concatenate(self.sample[0]) if self.sample[0] else np.zeros((0, tracks))
        target = np.concatenate(self.sample[1]) if self.sample[1] else np.zeros((0, tracks))
        if len(target):
            table["spearmanr"] = spearmanr_np(target, pred)
        labels = target > 0.5
        kind = np.where(self.binary, "binary", "peaks" if peaks else "none")
        if peaks and not self.binary.all():
            called = call_peaks(target, self.target_sum / max(self.count, 1))
            labels = np.where(self.binary, labels, called)
        cols = np.flatnonzero(kind != "none")
        if len(cols) and len(target):
            table.loc[cols, "auroc"] = auroc_np(labels[:, cols], pred[:, cols])
            table.loc[cols, "auprc"] = auprc_np(labels[:, cols], pred[:, cols])
        table["auc_labels"] = kind
        return table, pred, target, labels

    def tss_metrics(self) -> pd.DataFrame:
        pred, target = self.tss
        regions = target.shape[0]
        logged = [np.log2(1 + np.maximum(x, 0)) for x in (target, pred)]
        nan = np.full(target.shape[1], np.nan)
        return pd.DataFrame({
            "tss_genes": regions,
            "tss_pearsonr": pearsonr_np(*logged) if regions > 1 else nan,
            "tss_spearmanr": spearmanr_np(target, pred) if regions > 1 else nan,
        })
