"""Accuracy statistics on whole numpy arrays and the summary across folds (Keras-free).

How each metric is aggregated (per track; never pooled across tracks):

- ``pearsonr``, ``r2``: over all bins of all sequences of the split, concatenated (exact,
  float64), in the transformed scale the model was trained on (the TFRecord targets);
  overlapping windows count their shared bins once per window, as in Basenji.
- ``pearsonr_raw``, ``r2_raw``: the same after `coverage.untransform` of targets and
  predictions (pooled coverage in the track's units); NaN when no track sheet is found.
- ``spearmanr``: Spearman r over the same bins (rank-based: one value for both scales).
- ``auroc``, ``auprc``: against the track's own values when all are 0 or 1 (``auc_labels``
  binary), else, with `peaks`, against peaks called as ``basenji_test.py --peaks`` does:
  the Poisson p-value of the rounded value under the track's mean, Benjamini-Hochberg
  q < 0.01 (``auc_labels`` peaks); NaN otherwise.
- ``tss_genes``, ``tss_pearsonr``, ``tss_spearmanr`` (with a TSS BED): untransformed prediction
  and target summed over the bins overlapping `tss_window` bp centred on each region, then
  Pearson r of log2(1 + sum) and Spearman r across regions. A region counts once, in the
  window whose centre is nearest; regions on chromosomes absent from the genome or in no
  window of the split are counted in the log, not fatal.

Spearman r and AUROC/AUPRC need all values at once: past `max_values` bin x track values they
use a seeded uniform sample of bins (logged). `cv_summary` averages the per-track values over
folds and, for a fold, over tracks.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.special import pdtrc

from seqnn import SeqnnError
from seqnn.io import write_tsv

log = logging.getLogger("seqnn")

METRICS = ["pearsonr", "r2", "spearmanr", "pearsonr_raw", "r2_raw", "auroc", "auprc"]
TSS_METRICS = ["tss_pearsonr", "tss_spearmanr"]
ALL_TRACKS = "(all tracks)"
PEAK_FDR = 0.01


# ---------------------------------------------------------------------------------------------
# Metrics on whole arrays


def columns(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1])


def ranks(x) -> np.ndarray:
    """Per-column ranks of ``[N, tracks]`` values, 1..N, ties given their average rank."""
    out = np.empty(x.shape)
    for t, col in enumerate(x.T):
        _, inverse, counts = np.unique(col, return_inverse=True, return_counts=True)
        out[:, t] = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    return out


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Per-column Benjamini-Hochberg adjusted p-values (q-values) of ``[N, tracks]``."""
    pvals = columns(pvalues)
    n = len(pvals)
    order = np.argsort(pvals, axis=0)
    scaled = np.take_along_axis(pvals, order, 0) * n / np.arange(1, n + 1)[:, None]
    q = np.minimum(np.minimum.accumulate(scaled[::-1], axis=0)[::-1], 1)
    out = np.empty_like(q)
    np.put_along_axis(out, order, q, 0)
    return out


def call_peaks(y, mean=None, fdr: float = PEAK_FDR) -> np.ndarray:
    """Peak labels (bool ``[N, tracks]``) of values ``[N, tracks]`` as basenji_test.py --peaks:
    p-value of the rounded value under Poisson(track mean), Benjamini-Hochberg q < `fdr`."""
    y = columns(y)
    mean = y.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    k = np.round(y)  # P(X >= k); 1 for k <= 0
    pvalues = np.where(k >= 1, pdtrc(np.maximum(k, 1) - 1, np.maximum(mean, 1e-12)), 1.0)
    return benjamini_hochberg(pvalues) < fdr


# ---------------------------------------------------------------------------------------------
# Across folds


def _fold_values(paths: dict[str, str]) -> dict[str, pd.DataFrame]:
    """metric -> [track, fold] values of acc.tsv files {fold: path}, sheet order kept."""
    accs = {fold: pd.read_csv(path, sep="\t") for fold, path in paths.items()}
    first_fold, first = next(iter(accs.items()))
    for fold, acc in accs.items():
        if acc.identifier.tolist() != first.identifier.tolist():
            raise SeqnnError(f"{paths[fold]}: its tracks differ from those of {paths[first_fold]};"
                             " evaluate every fold on the same data")
    metrics = [m for m in METRICS + TSS_METRICS if m in first.columns]
    return {m: pd.DataFrame({fold: acc[m].to_numpy() for fold, acc in accs.items()},
                            index=first.identifier) for m in metrics}


def _mean_sem(values: pd.DataFrame) -> pd.DataFrame:
    n = values.notna().sum(axis=1)
    return pd.DataFrame({"mean": values.mean(axis=1),
                         "sem": values.std(axis=1, ddof=1) / np.sqrt(n)}, index=values.index)


def cv_summary(folds: dict[str, str], ensemble: dict[str, str] | None = None,
               out: str | None = None) -> pd.DataFrame:
    """One table across folds from acc.tsv files ({fold name: path}), written to `out`.

    Rows: model (``single``: each fold's own model; ``ensemble``: each fold's ensemble), track
    identifier (``(all tracks)``: the mean over tracks), metric. Columns: mean and SEM over the
    folds where the value is defined, then each fold's value. A track's value is its metric over
    all bins of the fold's test set; ``(all tracks)`` holds each fold's mean over tracks, and
    its mean and SEM are taken over those fold means.
    """
    rows = []
    for model, paths in (("single", folds), ("ensemble", ensemble or {})):
        if not paths:
            continue
        for metric, values in _fold_values(paths).items():
            values = pd.concat([values, values.mean().to_frame(ALL_TRACKS).T])
            block = pd.concat([_mean_sem(values), values], axis=1)
            block.insert(0, "metric", metric)
            block.insert(0, "model", model)
            rows.append(block.rename_axis("identifier").reset_index())
    table = pd.concat(rows, ignore_index=True)[["model", "identifier", "metric", "mean", "sem",
                                                *folds]]
    if out:
        write_tsv(table, out)
    overall = table[(table.identifier == ALL_TRACKS) & (table.metric == "pearsonr")]
    for model, mean, sem in overall[["model", "mean", "sem"]].itertuples(index=False):
        log.info("cv_summary: %s models over %d folds: mean pearsonr %.4f, SEM %.4f", model,
                 len(folds), mean, sem)
    return table
