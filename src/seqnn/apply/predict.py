"""Genome-wide prediction: tile, predict with test-time augmentation and fold ensembles, stitch
into shard files; embeddings of BED regions; and all of it at once for the command line.

Members. Each window is predicted by every member, a fold model × a (shift, strand)
augmentation, and a bin's value is the members' mean; with `variance`, also their population
variance (`ensemble.MemberMoments`). With `untransform` (default), each member is first mapped
back to the input track's units per base (`coverage.track_untransform` with the bin width), so
a bigWig overlays its input track. Windows, stitching and cross-fold: `seqnn.apply.tiling`.

Sharding and streaming. One job per shard streams its windows through tf.data in batches and
appends finished bins to its shard file (`seqnn.apply.gather`) as it goes, so memory is
bounded by the batch. `gather.write_bigwig` gathers one track from all shards.

Monte-Carlo dropout (`mc_n` passes per augmentation, `seqnn.apply.dropout`) adds members; with
`dtype` float16 or bfloat16 the shard values are rounded to it (float16 stored as such, an
overflow past 65,504 stops the job: `seqnn.apply.outputs.downcast`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from seqnn import SeqnnError
from seqnn.apply.dropout import mc_models
from seqnn.apply.ensemble import Ensemble, MemberMoments, compiled_inference, load_ensemble
from seqnn.apply.gather import (
    CHUNK,
    Predictions,
    open_shard,
    tss_summary,
    write_bigwig,
    write_region_table,
    write_regions,
)
from seqnn.apply.outputs import downcast, stored_dtype
from seqnn.apply.tiling import FoldMap, Stitcher, Tiling, prediction_runs, shard_pieces
from seqnn.data.bed import read_regions
from seqnn.data.coverage import track_untransform
from seqnn.data.fasta import chrom_sizes, fetch_codes, open_fasta
from seqnn.io import atomic_path
from seqnn.log import Progress
from seqnn.train.dataset import steady
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")


# ---------------------------------------------------------------------------------------------
# Streaming


def one_hot_batches(fasta: str, fai: str | None, batches: list, seq_length: int):
    """A prefetching tf.data stream of one-hot float32 [n, L, 4] windows (N: all zeros), one
    batch per (chroms, starts) of `batches` (one chromosome name, or one per window), read from
    the FASTA as the stream goes."""

    def codes():
        with open_fasta(fasta, fai) as fa:
            for chroms, starts in batches:
                chroms = np.broadcast_to(np.asarray(chroms, dtype=object), len(starts))
                yield np.stack([fetch_codes(fa, c, s, s + seq_length)
                                for c, s in zip(chroms, starts)])

    ds = tf.data.Dataset.from_generator(
        codes, output_signature=tf.TensorSpec([None, seq_length], tf.uint8))
    return steady(ds.map(lambda c: tf.one_hot(c, 4)).prefetch(2)).as_numpy_iterator()


class _Columns:
    """Appends row blocks [n, K] to HDF5 datasets [K, N] in whole chunks (bounded memory),
    rounded to `dtype` (`outputs.downcast`)."""

    def __init__(self, datasets, dtype="float32"):
        self.datasets, self.pos, self.pending, self.n = datasets, 0, [], 0
        self.dtype = dtype

    def append(self, blocks):
        self.pending.append(blocks)
        self.n += len(blocks[0])
        if self.n >= CHUNK:
            self._flush(self.n // CHUNK * CHUNK)

    def _flush(self, m):
        joined = [np.concatenate(parts) for parts in zip(*self.pending)]
        for ds, block in zip(self.datasets, joined):
            ds[:, self.pos : self.pos + m] = downcast(block[:m].T, self.dtype, ds.file.filename)
        self.pos, self.n = self.pos + m, self.n - m
        self.pending = [[b[m:] for b in joined]] if self.n else []

    def close(self):
        if self.n:
            self._flush(self.n)


# ---------------------------------------------------------------------------------------------
# One shard


@dataclass
class _Windows:
    """Every window of a shard, piece by piece: its piece, its index w in the piece's tiling,
    its first run bin on the genome grid, chromosome and start bp."""

    piece: np.ndarray
    w: np.ndarray
    first_bin: np.ndarray
    chroms: np.ndarray
    starts: np.ndarray

    def batches(self, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(chroms, starts) of consecutive batches (a batch may span pieces)."""
        return [(self.chroms[i : i + batch_size], self.starts[i : i + batch_size])
                for i in range(0, len(self.starts), batch_size)]


def _shard_windows(tiling: Tiling, pieces: pd.DataFrame, ens: Ensemble) -> _Windows:
    spans = [tiling.windows(b0, b1) for b0, b1 in zip(pieces.b0, pieces.b1)]
    piece = np.repeat(np.arange(len(pieces)), [len(w) for w in spans])
    w = np.concatenate([np.arange(span.start, span.stop) for span in spans])
    first_bin = (pieces.start.to_numpy() // ens.pool_width)[piece] + w * tiling.stride \
        - tiling.lead
    return _Windows(piece, w, first_bin, pieces.chrom.to_numpy()[piece],
                    first_bin * ens.pool_width - ens.crop_bp)


def _fold_groups(folds: FoldMap | None, win: _Windows, rows: slice, ens: Ensemble,
                 sizes: dict[str, int]) -> np.ndarray | None:
    """Per window of `rows` and bin, the fold model that predicts it (None: all models)."""
    if folds is None:
        return None
    pool = ens.pool_width
    centres = (win.first_bin[rows, None] + np.arange(ens.target_length)) * pool + pool // 2
    limit = np.array([sizes[c] - 1 for c in win.chroms[rows]])[:, None]
    return folds.groups(win.chroms[rows], np.minimum(centres, limit))


def _stitch_batch(lo: int, moments: list[np.ndarray], win: _Windows, stitchers, tiling: Tiling,
                  pieces: pd.DataFrame, columns: _Columns) -> None:
    """Stitch the moments [n, T, K] of windows lo.. into finished bins of their pieces."""
    rows = np.arange(lo, lo + len(moments[0]))
    cuts = np.flatnonzero(np.diff(win.piece[rows])) + 1
    for seg in np.split(np.arange(len(rows)), cuts):
        i = win.piece[lo + seg[0]]
        done = [st.add(win.w[lo + seg[0]], y[seg]) for st, y in zip(stitchers[i], moments)]
        b = done[0][0] + np.arange(len(done[0][1]))
        keep = (b >= pieces.b0[i]) & (b < pieces.b1[i])
        counts = tiling.counts(b[keep])
        counts = counts[:, None] if np.ndim(counts) else counts
        columns.append([v[keep] / counts for _, v in done])


def _shard_summary(pieces, ens, sizes, win, per_bin, shard, shards, seconds) -> dict:
    pool = ens.pool_width
    ends = np.minimum(pieces.start + pieces.b1 * pool, pieces.chrom.map(sizes))
    bp = int((ends - pieces.start - pieces.b0 * pool).sum())
    total_bins = int((pieces.b1 - pieces.b0).sum())
    summary = {"shard": shard, "shards": shards, "windows": len(win.starts),
               "members": per_bin, "bins": total_bins, "bp": bp,
               "seconds": round(seconds, 2), "bp_per_s": round(bp / max(seconds, 1e-9))}
    log.info("predict shard %d/%d: %d windows x %d members, %d bins (%.2f Mb) in %.1f s "
             "(%.0f bp/s)", shard, shards, summary["windows"], summary["members"], total_bins,
             bp / 1e6, seconds, summary["bp_per_s"])
    return summary


def predict_shard(
    models: Sequence[str],
    fasta: str,
    out: str,
    *,
    fai: str | None = None,
    bed: str | None = None,
    shard: int = 0,
    shards: int = 1,
    overlap: int | None = None,
    stitch: str = "centre",
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    untransform: bool = True,
    variance: bool = False,
    contigs: str | None = None,
    batch_size: int = 32,
    head: int | None = None,
    tracks=None,
    sum_tracks: bool = False,
    seq_length: int | None = None,
    aliases: dict[str, str] | None = None,
    threads: int | None = None,
    jit_compile: bool = False,
    mc_n: int = 0,
    seed: int = 0,
    dtype: str = "float32",
) -> dict:
    """Predict shard `shard` of `shards` of the genome (or of the `bed` regions) into HDF5 `out`.

    Args:
        models: model files, in fold order with `contigs`.
        fasta, fai: the genome (and its index, default fasta.fai).
        out: the shard file (`seqnn.apply.gather`).
        bed: regions to predict (default: whole chromosomes).
        shard, shards: which of how many near-equal parts of the bins.
        overlap: of consecutive windows in bp, a multiple of the bin width (default: a quarter
            of the predicted span).
        stitch: ``centre`` or ``average`` (`seqnn.apply.tiling`).
        rc, shifts: test-time augmentations averaged over.
        untransform: map members to the input track's units per base (module docstring).
        variance: also store the members' variance.
        contigs: contigs.bed for cross-fold prediction (`tiling.FoldMap`).
        batch_size: windows per batch.
        head: the output of multi-head models.
        tracks, sum_tracks: predict only these tracks (`ensemble.load_ensemble`; with `rc`,
            stranded ones bring their partners).
        seq_length: checked against the models' if given.
        aliases: FASTA chromosome name -> the BED's.
        threads: CPU threads of TensorFlow (None: its default).
        jit_compile: run the models through XLA (compiled once per job; measure whether it
            pays on your hardware).
        mc_n, seed: Monte-Carlo dropout passes per augmentation (0: none) and their seed.
        dtype: float32, float16 or bfloat16 values (module docstring).

    Returns:
        A summary (windows, members, bins, bp, seconds, bp/s).
    """
    set_threads(threads)
    ens = load_ensemble(models, head, seq_length, tracks, sum_tracks, partners=rc)
    pool = ens.pool_width
    overlap = ens.target_length // 4 * pool if overlap is None else overlap
    if overlap % pool:
        raise SeqnnError(f"overlap {overlap} bp is not a multiple of the {pool} bp bins; "
                         "set predict.overlap to one")
    tiling = Tiling(ens.target_length, overlap // pool, stitch)
    sizes = chrom_sizes(fasta, fai)
    regions = read_regions(bed, sizes, aliases) if bed else None
    pieces = shard_pieces(prediction_runs(sizes, pool, regions), shard, shards)
    folds = FoldMap(contigs, len(ens.models)) if contigs else None
    models, passes = mc_models(ens.models, mc_n, seed, ens.paths)
    moments = MemberMoments(
        [compiled_inference(m, ens.seq_length, batch_size, jit_compile) for m in models],
        rc, shifts, ens.strand_pair, track_untransform(ens.tracks, pool) if untransform else None,
        variance, passes)
    win = _shard_windows(tiling, pieces, ens)
    batches = win.batches(batch_size)
    tic = time.perf_counter()
    names = ["values", "variance"] if variance else ["values"]
    with atomic_path(out) as tmp, open_shard(tmp, ens, pieces, sizes, aliases, untransform,
                                             names, shard, shards, stored_dtype(dtype)) as h5:
        columns = _Columns([h5[n] for n in names], dtype)
        stitchers = [[Stitcher(tiling) for _ in names] for _ in range(len(pieces))]
        stream = one_hot_batches(fasta, fai, batches, ens.seq_length)
        with Progress(len(win.starts), f"predict shard {shard}/{shards}", "windows") as progress:
            for lo, x in zip(range(0, len(win.starts), batch_size), stream):
                groups = _fold_groups(folds, win, slice(lo, lo + len(x)), ens, sizes)
                stats = [y for y in moments(x, groups) if y is not None]
                _stitch_batch(lo, stats, win, stitchers, tiling, pieces, columns)
                progress.update(len(x))
        columns.close()
        total_bins = int((pieces.b1 - pieces.b0).sum())
        if columns.pos != total_bins:
            raise SeqnnError(f"{out}: wrote {columns.pos} of {total_bins} bins; report this bug")
    per_bin = moments.per_model * (1 if folds else len(ens.models))  # outside contigs: all
    return _shard_summary(pieces, ens, sizes, win, per_bin, shard, shards,
                          time.perf_counter() - tic)


# ---------------------------------------------------------------------------------------------
# Embeddings


def embedding_model(model, layer: str | None = None):
    """`model` cut at the output of `layer`, or by default at the penultimate representation
    (the input of the last layer with weights, i.e. of the final dense block)."""
    if layer is None:
        last = [lay for lay in model.layers if lay.weights][-1]
        return keras.Model(model.inputs, last.input, name=f"input_of_{last.name}")
    try:
        return keras.Model(model.inputs, model.get_layer(layer).output, name=layer)
    except ValueError:
        names = ", ".join(lay.name for lay in model.layers)
        raise SeqnnError(f"layer {layer!r} is not in the model; choose one of {names}") from None


def write_embeddings(model_path: str, fasta: str, bed: str, out: str, *, fai: str | None = None,
                     layer: str | None = None, batch_size: int = 32,
                     aliases: dict[str, str] | None = None, threads: int | None = None,
                     jit_compile: bool = False) -> tuple:
    """HDF5 `embeddings` [regions, length, channels] of a layer for seq_length windows centred
    on each BED region (as Basenji's embed), with the regions and `window_start`.

    Args:
        model_path: one model file.
        fasta, fai: the genome (and its index).
        bed: the regions.
        out: the HDF5 file written.
        layer: the layer whose output is embedded (default: `embedding_model`'s).
        batch_size: windows per batch.
        aliases: FASTA chromosome name -> the BED's.
        threads: CPU threads of TensorFlow (None: its default).
        jit_compile: run the model through XLA.

    Returns:
        The embeddings' shape.
    """
    set_threads(threads)
    ens = load_ensemble([model_path])
    sub = embedding_model(ens.models[0], layer)
    length = ens.seq_length
    regions = read_regions(bed, chrom_sizes(fasta, fai), aliases)
    starts = ((regions.start + regions.end) // 2 - length // 2).to_numpy()
    chroms = regions.chrom.to_numpy()
    batches = [(chroms[i : i + batch_size], starts[i : i + batch_size])
               for i in range(0, len(regions), batch_size)]
    forward = compiled_inference(sub, length, batch_size, jit_compile)
    shape = (len(regions), *sub.output_shape[1:])
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset("embeddings", shape, np.float32, track_times=False)
        for (i, x) in zip(range(0, len(regions), batch_size),
                          one_hot_batches(fasta, fai, batches, length)):
            ds[i : i + len(x)] = np.asarray(forward(x))
        write_region_table(f, regions, window_start=starts)
        f.attrs.update({"layer": sub.name, "model": str(model_path)})
    log.info("%s: %s embeddings %s of %d regions", out, sub.name, shape[1:], len(regions))
    return shape


# ---------------------------------------------------------------------------------------------
# All at once (the CLI)


def predict(models: Sequence[str], fasta: str, out_dir: str, *, fai: str | None = None,
            regions_h5: bool = False, tss_bed: str | None = None, tss_window: int = 1000,
            embed_bed: str | None = None, embed_layer: str | None = None,
            **options) -> dict:
    """Predict in one process into `out_dir`: `predictions.h5` (one shard), `{track}.bw`,
    `variance/{track}.bw`, and optionally `regions.h5`, `tss.tsv` and `embeddings.h5`.

    Args:
        models: model files.
        fasta, fai: the genome (and its index).
        out_dir: where the files go.
        regions_h5: write the values of the `bed` regions (`gather.write_regions`).
        tss_bed, tss_window: TSSs summarised within ± `tss_window` bp (`gather.tss_summary`).
        embed_bed, embed_layer: regions embedded by the first model (`write_embeddings`).
        **options: those of `predict_shard`.

    Returns:
        `predict_shard`'s summary with the tracks and `out_dir`.
    """
    if regions_h5 and not options.get("bed"):
        raise SeqnnError("regions.h5 needs the regions: give a BED (--bed)")
    shard = os.path.join(out_dir, "predictions.h5")
    summary = predict_shard(models, fasta, shard, fai=fai, **options)
    with Predictions([shard]) as pred:
        tracks = pred.identifiers
    kinds = [False, True] if options.get("variance") else [False]
    for track in tracks:
        for var in kinds:
            write_bigwig([shard], track, os.path.join(out_dir, *(["variance"] * var),
                                                     f"{track}.bw"), var)
    if regions_h5:
        write_regions([shard], options["bed"], os.path.join(out_dir, "regions.h5"))
    if tss_bed:
        tss_summary([shard], tss_bed, os.path.join(out_dir, "tss.tsv"), tss_window)
    if embed_bed:
        write_embeddings(models[0], fasta, embed_bed, os.path.join(out_dir, "embeddings.h5"),
                         fai=fai, layer=embed_layer, batch_size=options.get("batch_size", 32),
                         aliases=options.get("aliases"),
                         jit_compile=options.get("jit_compile", False))
    return {**summary, "tracks": tracks, "out_dir": out_dir}
