"""Accuracy of trained models on a held-out split of a Basenji-format data directory.

`evaluate(models, data_dir, out_dir, split=...)` predicts every sequence of the split, averaged
over shifts and reverse complements (stranded tracks swapped back through the sheet's
strand_pair) and over `models` (an ensemble), and writes into `out_dir`:

- ``acc.tsv``: one row per track: index, identifier, description, then the metrics below;
- ``examples.h5``: what the plots need: a seeded sample of bins (``sample/pred``,
  ``sample/target``, untransformed, and ``sample/label``, the AUROC labels) and example windows
  (``loci/*``: the best and worst by Pearson r, and any asked for by region);
- ``predictions.h5`` with `save_predictions`: transformed predictions and targets
  ``[seqs, bins, tracks]`` (float16) with each sequence's chrom, start and end.

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

import contextlib
import logging
import math
import os
import time
import warnings

import h5py
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy.special import pdtrc
from tqdm import tqdm

from seqnn import SeqnnError
from seqnn.apply.ensemble import predict_augmented
from seqnn.data.coverage import untransform
from seqnn.data.genome import read_bed, read_labelled_bed
from seqnn.data.records import read_statistics, split_files
from seqnn.data.targets import check_sheet, read_sheet
from seqnn.io import atomic_path
from seqnn.model.build import load_model
from seqnn.model.metrics import R2, PearsonR, auprc_np, auroc_np, pearsonr_np
from seqnn.train.dataset import dataset
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")

METRICS = ["pearsonr", "r2", "spearmanr", "pearsonr_raw", "r2_raw", "auroc", "auprc"]
TSS_METRICS = ["tss_pearsonr", "tss_spearmanr"]
ALL_TRACKS = "(all tracks)"
PEAK_FDR = 0.01


# ---------------------------------------------------------------------------------------------
# Metrics on whole arrays


def _columns(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, x.shape[-1])


def _ranks(x) -> np.ndarray:
    """Per-column ranks of ``[N, tracks]`` values, 1..N, ties given their average rank."""
    out = np.empty(x.shape)
    for t, col in enumerate(x.T):
        _, inverse, counts = np.unique(col, return_inverse=True, return_counts=True)
        out[:, t] = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    return out


def spearmanr_np(y_true, y_pred) -> np.ndarray:
    """Per-track Spearman r of ``[..., tracks]`` arrays (average ranks for ties)."""
    return pearsonr_np(_ranks(_columns(y_true)), _ranks(_columns(y_pred)))


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Per-column Benjamini-Hochberg adjusted p-values (q-values) of ``[N, tracks]``."""
    p = _columns(pvalues)
    n = len(p)
    order = np.argsort(p, axis=0)
    scaled = np.take_along_axis(p, order, 0) * n / np.arange(1, n + 1)[:, None]
    q = np.minimum(np.minimum.accumulate(scaled[::-1], axis=0)[::-1], 1)
    out = np.empty_like(q)
    np.put_along_axis(out, order, q, 0)
    return out


def call_peaks(y, mean=None, fdr: float = PEAK_FDR) -> np.ndarray:
    """Peak labels (bool ``[N, tracks]``) of values ``[N, tracks]`` as basenji_test.py --peaks:
    p-value of the rounded value under Poisson(track mean), Benjamini-Hochberg q < `fdr`."""
    y = _columns(y)
    mean = y.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    k = np.round(y)  # P(X >= k); 1 for k <= 0
    pvalues = np.where(k >= 1, pdtrc(np.maximum(k, 1) - 1, np.maximum(mean, 1e-12)), 1.0)
    return benjamini_hochberg(pvalues) < fdr


class _Untransform:
    """`coverage.untransform` of each track of ``[..., tracks]`` arrays, per the sheet's rows
    (tracks sharing sum_stat and clip_soft are done together)."""

    def __init__(self, sheet: pd.DataFrame):
        soft = sheet.clip_soft.astype(float)
        scale = sheet.scale.astype(float).to_numpy()
        groups = sheet.groupby([sheet.sum_stat, soft.fillna(-1.0)]).groups
        self.groups = [(stat, None if clip < 0 else clip, list(rows), scale[list(rows)])
                       for (stat, clip), rows in groups.items()]

    def __call__(self, y: np.ndarray) -> np.ndarray:
        out = np.empty(y.shape, dtype=np.float32)
        for stat, clip_soft, cols, scale in self.groups:
            out[..., cols] = untransform(y[..., cols], stat, scale, clip_soft)
        return out


# ---------------------------------------------------------------------------------------------
# Inputs


def _sheet(data_dir: str, meta_targets, num_targets: int) -> pd.DataFrame | None:
    """The data's track sheet (targets.txt), else the model's, else None (logged)."""
    path = os.path.join(data_dir, "targets.txt")
    if os.path.exists(path):
        sheet = read_sheet(path)
    elif meta_targets:
        path = "the model's track sheet"
        sheet = pd.DataFrame(meta_targets)
        check_sheet(sheet, path)
    else:
        log.warning("%s: not found and the model carries no track sheet; tracks are unnamed, "
                    "stranded tracks are not swapped and *_raw metrics are NaN", path)
        return None
    if len(sheet) != num_targets:
        raise SeqnnError(f"{path}: {len(sheet)} tracks but statistics.json says num_targets "
                         f"{num_targets}; use the sheet the data was made with")
    return sheet


def _coordinates(data_dir: str, split: str):
    """All rows of data_dir/sequences.bed and the split's rows (None, None without it)."""
    path = os.path.join(data_dir, "sequences.bed")
    if not os.path.exists(path):
        return None, None
    bed = read_labelled_bed(path)
    return bed, bed[bed.label == split].reset_index(drop=True)


def _count_records(data_dir: str, split: str) -> int:
    records = tf.data.TFRecordDataset(split_files(data_dir, split), compression_type="ZLIB")
    return int(records.reduce(0, lambda n, _: n + 1))


def parse_region(text: str) -> tuple[str, int, int]:
    """'chrom:start-end' (commas allowed) as (chrom, start, end)."""
    chrom, _, span = str(text).rpartition(":")
    try:
        start, end = (int(v.replace(",", "")) for v in span.split("-"))
    except ValueError:
        start = end = -1
    if not chrom or not 0 <= start < end:
        raise SeqnnError(f"region {text!r}: expected chrom:start-end with start < end; "
                         "fix the loci list")
    return chrom, start, end


def _asked_loci(regions, windows: pd.DataFrame | None) -> dict[int, str]:
    """Sequence index -> region text, for regions inside a window of the split (most overlap)."""
    if not regions:
        return {}
    if windows is None:
        raise SeqnnError("loci: the data directory has no sequences.bed to place regions in; "
                         "drop the loci list")
    out = {}
    for text in regions:
        chrom, start, end = parse_region(text)
        overlap = (np.minimum(windows.end, end) - np.maximum(windows.start, start)).where(
            windows.chrom == chrom, 0)
        if overlap.max() > 0:
            out[int(overlap.idxmax())] = text
    return out


def _tss_plan(path, windows, genome_chroms, aliases, window_bp, pool_width, n_bins):
    """Regions of a BED placed in target windows: (seq -> [(region, bin0, bin1)], counts)."""
    bed = read_bed(path)
    to_genome = {v: k for k, v in (aliases or {}).items()}
    chrom = bed.chrom.map(lambda c: to_genome.get(c, c))
    lo = (bed.start + bed.end) // 2 - window_bp // 2
    hi = lo + window_bp
    absent = ~chrom.isin(genome_chroms)
    plan, used = {}, 0
    by_chrom = {c: (g.index.to_numpy(), g.start.to_numpy(), g.end.to_numpy())
                for c, g in windows.groupby("chrom")}
    for i in np.flatnonzero(~absent.to_numpy()):
        seqs, starts, ends = by_chrom.get(chrom[i], (np.zeros(0, int),) * 3)
        inside = (starts <= lo[i]) & (ends >= hi[i])
        if not inside.any():
            continue
        offset = np.abs((starts + ends) / 2 - (lo[i] + hi[i]) / 2)
        seq = int(seqs[inside][np.argmin(offset[inside])])
        b0 = (lo[i] - windows.start[seq]) // pool_width
        b1 = min(-(-(hi[i] - windows.start[seq]) // pool_width), n_bins)
        plan.setdefault(seq, []).append((used, int(b0), int(b1)))
        used += 1
    counts = {"regions": len(bed), "absent_chrom": int(absent.sum()),
              "outside": int(len(bed) - absent.sum() - used), "used": used}
    missing = sorted(set(chrom[absent]))
    log.info("%s: %d regions, %d evaluated, %d on chromosomes absent from the genome (%s), "
             "%d not inside a whole target window of the split", path, counts["regions"], used,
             counts["absent_chrom"], ", ".join(missing[:10]) + (" ..." if len(missing) > 10
                                                                else ""), counts["outside"])
    return plan, counts


# ---------------------------------------------------------------------------------------------
# Streaming accumulation


class _Accumulator:
    """Per-track statistics of a stream of (prediction, target) batches ``[B, bins, tracks]``."""

    def __init__(self, tracks, sheet, sample_rate, seed, n_loci, asked, tss_plan, tss_regions):
        self.untransform = None if sheet is None else _Untransform(sheet)
        self.rate = sample_rate
        self.rng = np.random.default_rng(seed)
        scales = ("", "_raw") if sheet is not None else ("",)
        self.moments = {f"{name}{s}": cls(tracks, summarize=False)
                        for s in scales for name, cls in (("pearsonr", PearsonR), ("r2", R2))}
        self._update_moments = _compiled(self._moments_step)
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
            seq_r = [np.nanmean(pearsonr_np(t, p)) for t, p in zip(target, pred)]
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


# ---------------------------------------------------------------------------------------------
# Evaluation


def _compiled(fn):
    """`fn` as a TensorFlow graph function, traced once for any batch size."""
    return tf.function(fn, reduce_retracing=True)


def _predictor(model, rc: bool, shifts, strand_pair):
    """x [B, L, 4] -> mean prediction over shifts x strands, with the model compiled once."""
    call = _compiled(lambda x: model(x, training=False))

    def predict(x):
        return predict_augmented(lambda xs, training=False: call(xs), x, rc, shifts, strand_pair)

    return predict


def _check_model(model, path, stats, data_dir):
    if isinstance(model.output_shape, list):
        raise SeqnnError(f"{path}: the model has {len(model.output_shape)} heads; evaluate a "
                         "single-head model (as `seqnn train` saves)")
    _, length, tracks = model.output_shape
    want = (stats["target_length"], stats["num_targets"])
    if model.input_shape[1] != stats["seq_length"] or (length, tracks) != want:
        raise SeqnnError(f"{path}: the model maps {model.input_shape[1]} bp to {length} bins x "
                         f"{tracks} tracks but {data_dir}/statistics.json has seq_length "
                         f"{stats['seq_length']}, {want[0]} bins x {want[1]} tracks; evaluate "
                         "on the data the model was trained for")


def _write_table(df: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="nan")


def _write_examples(path, acc, sample, loci, windows, pool_width, crop_bp, meta):
    """examples.h5: the sampled bins and the example windows (see the module docstring)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for key, value in meta.items():
            h5.attrs[key] = value
        h5.attrs["identifiers"] = acc.identifier.astype(str).tolist()
        h5.attrs["strand_pair"] = acc.strand_pair.to_numpy(dtype=np.int64)
        h5.attrs["auc_labels"] = acc.auc_labels.astype(str).tolist()
        h5.attrs["pool_width"] = pool_width
        for name, value in zip(("pred", "target", "label"), sample):
            h5.create_dataset(f"sample/{name}", data=value, compression="gzip")
        group = h5.create_group("loci")
        entries = [e for _, e in loci]
        n_bins, tracks = (entries[0][2].shape if entries else (0, len(acc)))
        group["pred"] = np.array([e[2] for e in entries], np.float32).reshape(-1, n_bins, tracks)
        group["target"] = np.array([e[3] for e in entries], np.float32).reshape(-1, n_bins,
                                                                                tracks)
        group["r"] = np.array([e[0] for e in entries], np.float64)
        group["reason"] = [reason for reason, _ in loci]
        if windows is None:
            group["chrom"] = [f"seq{e[1]}" for e in entries]
            group["start"] = np.array([0] * len(entries), np.int64)
        else:
            group["chrom"] = [windows.chrom[e[1]] for e in entries]
            group["start"] = np.array([windows.start[e[1]] + crop_bp for e in entries], np.int64)


def evaluate(
    models: str | list[str],
    data_dir: str,
    out_dir: str,
    *,
    split: str = "test",
    rc: bool = False,
    shifts=(0,),
    batch_size: int = 8,
    peaks: bool = False,
    tss: str | None = None,
    tss_window: int = 1024,
    fai: str | None = None,
    aliases: dict | None = None,
    loci=(),
    n_loci: int = 2,
    save_predictions: bool = False,
    max_values: int = 20_000_000,
    sample_points: int = 5000,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Evaluate model file(s) on `split` of `data_dir`; see the module docstring for what lands
    in `out_dir`. Several models are averaged (an ensemble). Returns a summary dict.

    `rc`, `shifts`: augmentations averaged per model; `peaks`: AUROC/AUPRC against called
    peaks; `tss`: a BED of regions for the per-gene evaluation (`fai` names the genome's
    chromosomes, else sequences.bed's; `aliases` maps FASTA names to the BED's); `loci`:
    regions ('chrom:start-end') whose windows are kept as examples besides the `n_loci` best
    and worst; `max_values`: bin x track values held for Spearman r and AUROC before sampling.
    """

    paths = [models] if isinstance(models, str | os.PathLike) else list(models)
    shifts = [int(s) for s in shifts] or [0]
    stats = read_statistics(data_dir)
    set_threads(threads)
    loaded = [load_model(p) for p in paths]
    for (model, _), path in zip(loaded, paths):
        _check_model(model, path, stats, data_dir)
    sheet = _sheet(data_dir, loaded[0][1].get("targets"), stats["num_targets"])
    strand_pair = None if sheet is None else sheet.strand_pair.astype(int).tolist()
    predictors = [_predictor(m, rc, shifts, strand_pair) for m, _ in loaded]

    bed, windows = _coordinates(data_dir, split)
    target_windows = None if windows is None else windows.assign(
        start=windows.start + stats["crop_bp"], end=windows.end - stats["crop_bp"])
    n_seqs = len(windows) if windows is not None else stats.get(f"{split}_seqs") or \
        _count_records(data_dir, split)
    if not n_seqs:
        raise SeqnnError(f"{data_dir}: split {split} has no sequence; check the split name")
    n_bins, tracks = stats["target_length"], stats["num_targets"]
    plan, tss_counts = {}, None
    if tss:
        if windows is None:
            raise SeqnnError(f"{data_dir}: no sequences.bed, so TSS regions cannot be placed; "
                             "drop the TSS BED or add sequences.bed (chrom start end split)")
        chroms = (pd.read_csv(fai, sep="\t", header=None, usecols=[0], dtype=str)[0]
                  if fai else bed.chrom)
        plan, tss_counts = _tss_plan(tss, target_windows, set(chroms), aliases, tss_window,
                                     stats["pool_width"], n_bins)
    rate = min(1.0, max_values / (n_seqs * n_bins * tracks))
    if rate < 1:
        log.info("Spearman r and AUROC/AUPRC on a %.3g sample of bins (max_values %d)", rate,
                 max_values)
    acc = _Accumulator(tracks, sheet, rate, seed, n_loci, _asked_loci(loci, windows), plan,
                       tss_counts["used"] if tss_counts else 0)

    passes = len(shifts) * (2 if rc else 1) * len(paths)
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        h5 = None
        if save_predictions:

            tmp = stack.enter_context(atomic_path(os.path.join(out_dir, "predictions.h5")))
            h5 = stack.enter_context(h5py.File(tmp, "w"))
            for name in ("pred", "target"):
                h5.create_dataset(name, (0, n_bins, tracks), np.float16, compression="gzip",
                                  maxshape=(None, n_bins, tracks), chunks=(1, n_bins, tracks))
        batches = dataset(data_dir, split, batch_size)
        for x, y in tqdm(batches, total=math.ceil(n_seqs / batch_size), desc=f"evaluate {split}",
                         unit="batch", disable=None):
            x, target = x.numpy(), y.numpy()
            pred = sum(p(x) for p in predictors) / len(predictors)
            acc.update(pred, target)
            if h5 is not None:
                for name, value in (("pred", pred), ("target", target)):
                    h5[name].resize(acc.seen, axis=0)
                    h5[name][acc.seen - len(x):] = value
        if windows is not None and acc.seen != len(windows):
            raise SeqnnError(f"{data_dir}/sequences.bed: {len(windows)} {split} sequences but "
                             f"the TFRecords hold {acc.seen}; regenerate the data directory")
        if h5 is not None and windows is not None:
            for col in ("chrom", "start", "end"):
                h5[col] = windows[col].to_numpy(dtype="S" if col == "chrom" else np.int64)
    seconds = time.perf_counter() - start

    table, pred, target, labels = acc.metrics(peaks)
    if sheet is None:
        sheet = pd.DataFrame({"identifier": [f"t{t}" for t in range(tracks)], "description": "",
                              "strand_pair": range(tracks)})
    out = pd.concat([
        pd.DataFrame({"index": range(tracks), "identifier": sheet.identifier,
                      "description": sheet.description.fillna("").astype(str)}),
        table, acc.tss_metrics() if tss else None], axis=1)
    _write_table(out, os.path.join(out_dir, "acc.tsv"))

    pick = np.sort(np.random.default_rng(seed).permutation(len(target))[:sample_points])
    shown = [pred[pick], target[pick]]
    if acc.untransform is not None:
        shown = [acc.untransform(v) for v in shown]
    _write_examples(
        os.path.join(out_dir, "examples.h5"), out.assign(strand_pair=sheet.strand_pair),
        [*shown, labels[pick]], acc.loci(), windows, stats["pool_width"], stats["crop_bp"],
        {"split": split, "models": len(paths), "rc": rc, "shifts": shifts,
         "scale": "transformed" if acc.untransform is None else "raw"},
    )
    summary = {
        "split": split, "sequences": acc.seen, "models": len(paths), "passes": passes,
        "seconds": round(seconds, 2), "seqs_per_s": round(acc.seen / seconds, 2),
        **{name: float(np.nanmean(out[name])) if out[name].notna().any() else None
           for name in METRICS},
    }
    if tss_counts:
        summary["tss"] = tss_counts
    log.info("evaluated %s on %s: %d sequences x %d bins x %d tracks, %d pass(es) each, "
             "mean pearsonr %.4f, r2 %.4f (%.1f seqs/s)", ", ".join(map(str, paths)), split,
             acc.seen, n_bins, tracks, passes, out.pearsonr.mean(), out.r2.mean(),
             summary["seqs_per_s"])
    return summary


# ---------------------------------------------------------------------------------------------
# Across folds


def _fold_values(paths: dict[str, str]) -> dict[str, pd.DataFrame]:
    """metric -> [track, fold] values of acc.tsv files {fold: path}, sheet order kept."""
    accs = {fold: pd.read_csv(p, sep="\t") for fold, p in paths.items()}
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
        _write_table(table, out)
    overall = table[(table.identifier == ALL_TRACKS) & (table.metric == "pearsonr")]
    for model, mean, sem in overall[["model", "mean", "sem"]].itertuples(index=False):
        log.info("cv_summary: %s models over %d folds: mean pearsonr %.4f, SEM %.4f", model,
                 len(folds), mean, sem)
    return table
