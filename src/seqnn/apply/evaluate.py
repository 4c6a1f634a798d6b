"""Accuracy of trained models on a held-out split of a Basenji-format data directory.

`evaluate(models, data_dir, out_dir, split=...)` predicts every sequence of the split, averaged
over shifts and reverse complements (stranded tracks swapped back through the sheet's
strand_pair) and over `models` (an ensemble), and writes into `out_dir`:

- ``acc.tsv``: one row per track: index, identifier, description, then the metrics (how each is
  aggregated: `seqnn.apply.accuracy`);
- ``examples.h5``: what the plots need: a seeded sample of bins (``sample/pred``,
  ``sample/target``, untransformed, and ``sample/label``, the AUROC labels) and example windows
  (``loci/*``: the best and worst by Pearson r, and any asked for by region);
- ``predictions.h5`` with `save_predictions`: transformed predictions and targets
  (`seqnn.apply.outputs.PredictionFile`: the bins kept, the dtype, every member).

Members are the models x shifts x strands (x `mc_n` Monte-Carlo dropout passes); with
`dtype` the predictions are rounded to it (`outputs.downcast`) before the metrics, so acc.tsv
shows what the downcast costs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqnn import SeqnnError
from seqnn.apply.accumulate import Accumulator
from seqnn.apply.accuracy import METRICS
from seqnn.apply.dropout import mc_models
from seqnn.apply.ensemble import MemberMoments, compiled_inference
from seqnn.apply.outputs import PredictionFile, downcast, write_examples
from seqnn.data.bed import read_bed, read_labelled_bed
from seqnn.data.records import read_statistics
from seqnn.data.targets import data_sheet
from seqnn.io import atomic_path, write_tsv
from seqnn.log import Progress
from seqnn.model.build import load_model
from seqnn.model.select import select_tracks
from seqnn.train.dataset import count_records, dataset
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")

NO_SHEET = ("the model carries no track sheet either; tracks are unnamed, stranded tracks are "
            "not swapped and *_raw metrics are NaN")


# ---------------------------------------------------------------------------------------------
# Inputs


def _coordinates(data_dir: str, split: str):
    """All rows of data_dir/sequences.bed and the split's rows (None, None without it)."""
    path = os.path.join(data_dir, "sequences.bed")
    if not os.path.exists(path):
        return None, None
    bed = read_labelled_bed(path)
    return bed, bed[bed.label == split].reset_index(drop=True)


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
# Models


@dataclass
class _Ensemble:
    """The models of an evaluation as members (models x augmentations x passes), the sheet."""

    paths: list[str]
    members: MemberMoments
    sheet: pd.DataFrame | None
    passes: int  # model calls per sequence


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


def _selected(model, meta, path, tracks, rc, stats, data_dir):
    """`(model, meta)` cut to `tracks` (with rc, their strand partners follow), which must be
    one model track per row of the data, in order."""
    if not meta.get("targets"):
        raise SeqnnError(f"{path}: the model carries no track sheet, so evaluate tracks cannot "
                         "be chosen; import it with --targets (the head's targets.txt)")
    model, rows, _ = select_tracks(model, meta["targets"], tracks, partners=rc,
                                   where=f"evaluate tracks of {path}", sheet="its track sheet")
    if len(rows) != stats["num_targets"]:
        ids = ", ".join(str(r["identifier"]) for r in rows[:6])
        raise SeqnnError(f"{path}: the tracks chosen ({len(rows)}: {ids}) do not pair with the "
                         f"{stats['num_targets']} rows of {data_dir}/targets.txt; choose one "
                         "model track per row, in its order (with rc, stranded tracks bring "
                         "their strand partners)")
    return model, {**meta, "targets": rows}


def _load(paths, stats, data_dir, rc, shifts, batch_size, tracks=None, mc_n=0,
          seed=0) -> _Ensemble:
    loaded = [load_model(path) for path in paths]
    if tracks is not None:
        loaded = [_selected(model, meta, path, tracks, rc, stats, data_dir)
                  for (model, meta), path in zip(loaded, paths)]
    for (model, _), path in zip(loaded, paths):
        _check_model(model, path, stats, data_dir)
    sheet = data_sheet(data_dir, stats["num_targets"], loaded[0][1].get("targets"),
                       missing=NO_SHEET)
    if tracks is not None and rc and sheet is not None:
        ours = [int(r["strand_pair"]) for r in loaded[0][1]["targets"]]
        if sheet.strand_pair.astype(int).tolist() != ours:
            raise SeqnnError(f"{data_dir}/targets.txt: its strand pairs differ from those of "
                             f"the model tracks chosen ({ours}); pair the stranded rows as the "
                             "model's tracks are paired, or evaluate without rc")
    strand_pair = None if sheet is None else sheet.strand_pair.astype(int).tolist()
    models, passes = mc_models([model for model, _ in loaded], mc_n, seed, paths)
    calls = [compiled_inference(m, stats["seq_length"], batch_size) for m in models]
    members = MemberMoments(calls, rc, shifts, strand_pair, passes=passes)
    return _Ensemble(paths, members, sheet, members.per_model * len(paths))


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class _Split:
    """The sequences of the split: their windows (None without sequences.bed) and count."""

    bed: pd.DataFrame | None  # all of sequences.bed
    windows: pd.DataFrame | None
    n_seqs: int


def _split(data_dir: str, split: str, stats: dict) -> _Split:
    bed, windows = _coordinates(data_dir, split)
    n_seqs = len(windows) if windows is not None else count_records(data_dir, split, stats)
    if not n_seqs:
        raise SeqnnError(f"{data_dir}: split {split} has no sequence; check the split name")
    return _Split(bed, windows, n_seqs)


def _accumulator(data_dir, seqs: _Split, stats, sheet, *, tss, tss_window, fai, aliases, loci,
                 n_loci, max_values, seed) -> tuple[Accumulator, dict | None]:
    """The accumulator of the split with its TSS plan (and the TSS counts, None without).

    Args:
        as `evaluate`.
    """
    n_bins, tracks = stats["target_length"], stats["num_targets"]
    plan, tss_counts = {}, None
    if tss:
        if seqs.windows is None:
            raise SeqnnError(f"{data_dir}: no sequences.bed, so TSS regions cannot be placed; "
                             "drop the TSS BED or add sequences.bed (chrom start end split)")
        crop = stats["crop_bp"]
        target_windows = seqs.windows.assign(start=seqs.windows.start + crop,
                                             end=seqs.windows.end - crop)
        chroms = (pd.read_csv(fai, sep="\t", header=None, usecols=[0], dtype=str)[0]
                  if fai else seqs.bed.chrom)
        plan, tss_counts = _tss_plan(tss, target_windows, set(chroms), aliases, tss_window,
                                     stats["pool_width"], n_bins)
    rate = min(1.0, max_values / (seqs.n_seqs * n_bins * tracks))
    if rate < 1:
        log.info("Spearman r and AUROC/AUPRC on a %.3g sample of bins (max_values %d)", rate,
                 max_values)
    acc = Accumulator(tracks, sheet, rate, seed, n_loci, _asked_loci(loci, seqs.windows), plan,
                      tss_counts["used"] if tss_counts else 0)
    return acc, tss_counts


def _stream(data_dir, split, seqs: _Split, ens: _Ensemble, acc: Accumulator, stats,
            batch_size: int, predictions_h5: str | None, outputs: dict) -> None:
    """Predict every batch of the split into `acc` (and `predictions_h5`, if given, with
    `outputs`: dtype, step, sample, seed, return_all)."""
    with contextlib.ExitStack() as stack:
        h5 = None
        if predictions_h5:
            h5 = stack.enter_context(PredictionFile(
                stack.enter_context(atomic_path(predictions_h5)), stats["target_length"],
                stats["num_targets"], ens.passes, **outputs))
        progress = stack.enter_context(Progress(seqs.n_seqs, f"evaluate {split}", "sequences"))
        for x, y in dataset(data_dir, split, batch_size):
            x, target = x.numpy(), y.numpy()
            every = list(ens.members.members(x)) if outputs["return_all"] else None
            pred = ens.members(x)[0] if every is None else np.mean(every, axis=0)
            pred = downcast(pred, outputs["dtype"], "evaluate").astype(np.float32)
            acc.update(pred, target)
            if h5 is not None:
                h5.append(pred, target, every)
            progress.update(len(x))
        if seqs.windows is not None and acc.seen != len(seqs.windows):
            raise SeqnnError(f"{data_dir}/sequences.bed: {len(seqs.windows)} {split} sequences "
                             f"but the TFRecords hold {acc.seen}; regenerate the data directory")
        if h5 is not None and seqs.windows is not None:
            h5.coordinates(seqs.windows)


def _acc_table(acc: Accumulator, sheet, tracks: int, peaks: bool, tss: bool):
    """acc.tsv's table (index, identifier, description, metrics), the sheet used and the
    sample's predictions, targets and labels."""
    table, pred, target, labels = acc.metrics(peaks)
    if sheet is None:
        sheet = pd.DataFrame({"identifier": [f"t{t}" for t in range(tracks)], "description": "",
                              "strand_pair": range(tracks)})
    out = pd.concat([
        pd.DataFrame({"index": range(tracks), "identifier": sheet.identifier,
                      "description": sheet.description.fillna("").astype(str)}),
        table, acc.tss_metrics() if tss else None], axis=1)
    return out, sheet, (pred, target, labels)


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
    tracks=None,
    threads: int | None = None,
    mc_n: int = 0,
    dtype: str = "float32",
    step: int = 1,
    sample_bins: int | None = None,
    return_all: bool = False,
) -> dict:
    """Evaluate model file(s) on `split` of `data_dir` into `out_dir` (module docstring).

    Args:
        models: one model file or several, averaged (an ensemble).
        data_dir: a Basenji-format data directory.
        out_dir: where acc.tsv, examples.h5 (and predictions.h5) go.
        split: the split evaluated.
        rc, shifts: augmentations averaged per model.
        batch_size: sequences per batch.
        peaks: AUROC/AUPRC against called peaks for non-binary tracks.
        tss, tss_window: a BED of regions for the per-gene evaluation, summed over
            `tss_window` bp centred on each.
        fai: names the genome's chromosomes for `tss` (default: sequences.bed's).
        aliases: FASTA chromosome name -> the TSS BED's.
        loci: regions ('chrom:start-end') whose windows are kept as examples.
        n_loci: the best and the worst windows kept as examples, each.
        save_predictions: also write predictions.h5.
        max_values: bin x track values held for Spearman r and AUROC before sampling.
        sample_points: bins of the sample stored in examples.h5.
        seed: of the samples.
        tracks: the models' tracks (identifiers, indices or description regexes) that the
            data's rows are, in order (None: all); the heads are cut to them
            (`seqnn.model.select`), e.g. a published model on the user's tracks.
        threads: CPU threads of TensorFlow (None: its default).
        mc_n: Monte-Carlo dropout passes per augmentation (0: none; masks drawn from `seed`).
        dtype: of the predictions (float32, float16, bfloat16; `outputs.downcast`).
        step, sample_bins: the bins of predictions.h5 kept (`outputs.positions`).
        return_all: predictions.h5 also holds every member's predictions.

    Returns:
        A summary: split, sequences, models, passes, seconds, seqs_per_s, the mean of each
        metric over tracks (and the TSS counts).
    """
    paths = [models] if isinstance(models, str | os.PathLike) else list(models)
    shifts = [int(s) for s in shifts] or [0]
    stats = read_statistics(data_dir)
    set_threads(threads)
    ens = _load(paths, stats, data_dir, rc, shifts, batch_size, tracks, mc_n, seed)
    seqs = _split(data_dir, split, stats)
    acc, tss_counts = _accumulator(
        data_dir, seqs, stats, ens.sheet, tss=tss, tss_window=tss_window, fai=fai,
        aliases=aliases, loci=loci, n_loci=n_loci, max_values=max_values, seed=seed)
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    _stream(data_dir, split, seqs, ens, acc, stats, batch_size,
            os.path.join(out_dir, "predictions.h5") if save_predictions else None,
            {"dtype": dtype, "step": step, "sample": sample_bins, "seed": seed,
             "return_all": return_all})
    seconds = time.perf_counter() - start

    out, sheet, (pred, target, labels) = _acc_table(acc, ens.sheet, stats["num_targets"],
                                                    peaks, bool(tss))
    write_tsv(out, os.path.join(out_dir, "acc.tsv"))
    pick = np.sort(np.random.default_rng(seed).permutation(len(target))[:sample_points])
    shown = [pred[pick], target[pick]]
    if acc.untransform is not None:
        shown = [acc.untransform(v) for v in shown]
    write_examples(
        os.path.join(out_dir, "examples.h5"), out.assign(strand_pair=sheet.strand_pair),
        [*shown, labels[pick]], acc.loci(), seqs.windows, stats["pool_width"], stats["crop_bp"],
        {"split": split, "models": len(paths), "rc": rc, "shifts": shifts,
         "scale": "transformed" if acc.untransform is None else "raw"},
    )
    return _summary(split, acc, ens, out, stats, seconds, tss_counts)


def _summary(split, acc: Accumulator, ens: _Ensemble, out: pd.DataFrame, stats, seconds,
             tss_counts) -> dict:
    summary = {
        "split": split, "sequences": acc.seen, "models": len(ens.paths), "passes": ens.passes,
        "seconds": round(seconds, 2), "seqs_per_s": round(acc.seen / seconds, 2),
        **{name: float(np.nanmean(out[name])) if out[name].notna().any() else None
           for name in METRICS},
    }
    if tss_counts:
        summary["tss"] = tss_counts
    log.info("evaluated %s on %s: %d sequences x %d bins x %d tracks, %d pass(es) each, "
             "mean pearsonr %.4f, r2 %.4f (%.1f seqs/s)", ", ".join(map(str, ens.paths)), split,
             acc.seen, stats["target_length"], stats["num_targets"], ens.passes,
             out.pearsonr.mean(), out.r2.mean(), summary["seqs_per_s"])
    return summary
