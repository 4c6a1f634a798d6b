"""Genome-wide prediction: tile, predict with test-time augmentation and fold ensembles, stitch,
and write bigWigs, region values, TSS summaries and embeddings.

Geometry. A model reads L = `seq_length` bp and predicts T = `target_length` bins of
P = `pool_width` bp for its centre L - 2C bp (C = `crop_bp`). Output bins lie on the genome
grid: bin i of a chromosome covers [iP, (i + 1)P); the last one is cut at the chromosome end.
Windows step by S = T - O bins (O: the overlap in bins) and are padded with N past the ends.

Stitching. ``centre`` (default): every bin takes the window in which it lies most centrally:
window w keeps its bins [O//2, O//2 + S), so each bin comes from exactly one window. ``average``:
every bin is the mean over all windows that predict it (T/S of them on average).

Members. Each window is predicted by every member, a fold model × a (shift, strand)
augmentation, and a bin's value is the members' mean; with `variance`, also their population
variance, streamed with Welford's update (members are never held together). With `untransform`
(default), each member is first mapped back to the input track's units per base (the inverse
coverage transform, divided by P for sum statistics), so a bigWig overlays its input track.

Cross-fold. Given contigs.bed (`cross_fold`), a bin whose centre (cut at the chromosome end)
lies in a fold-k contig is predicted by model k alone (model f{k} was tested on fold k: it never
trained on that sequence); bins outside every contig by all models. Models come in fold order.

Sharding and streaming. The bins to predict, of whole chromosomes or of BED regions snapped to
the grid and merged, are cut into `shards` pieces of near-equal size. One job per shard streams
its windows through tf.data in batches and appends finished bins to an HDF5 file as it goes
(`values`, and `variance`, each [tracks, bins] in pieces listed by `piece_*` datasets), so memory
is bounded by the batch. `write_bigwig` gathers one track from all shards.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import keras
import numpy as np
import pandas as pd
import pyBigWig
import tensorflow as tf
from tqdm import tqdm

from seqnn import SeqnnError
from seqnn.apply.ensemble import members
from seqnn.data.coverage import untransform as inverse
from seqnn.data.genome import chrom_sizes, fetch_codes, open_fasta, read_labelled_bed
from seqnn.io import atomic_path
from seqnn.model.build import load_model
from seqnn.model.params import model_params
from seqnn.train.dataset import steady
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")

STITCH = ("centre", "average")
CHUNK = 16384  # bins per HDF5 chunk and per bigWig write


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

    @property
    def identifiers(self) -> list[str]:
        return [str(t["identifier"]) for t in self.tracks]

    @property
    def strand_pair(self) -> list[int]:
        return [int(t.get("strand_pair", i)) for i, t in enumerate(self.tracks)]


def _member(path: str, head: int | None) -> dict:
    """One model file checked against its own params and statistics."""

    model, meta = load_model(path)
    if len(model.outputs) > 1:
        if head is None or not 0 <= head < len(model.outputs):
            raise SeqnnError(f"{path}: the model has {len(model.outputs)} heads; pick one with "
                             f"head 0..{len(model.outputs) - 1} (--head, predict.head)")
        model = keras.Model(model.inputs, model.outputs[head])
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
    return {"path": str(path), "model": model, "seq_length": length, "target_length": bins,
            "pool_width": pool, "crop_bp": crop, "tracks": tracks}


def load_ensemble(paths: Sequence[str], head: int | None = None,
                  seq_length: int | None = None) -> Ensemble:
    """Load model files that share geometry and tracks; `seq_length` is checked if given."""
    if not paths:
        raise SeqnnError("predict: no model file given; give at least one .keras model")
    members = [_member(str(p), head) for p in paths]
    first = members[0]
    for m in members[1:]:
        for key in ("seq_length", "target_length", "pool_width", "crop_bp"):
            if m[key] != first[key]:
                raise SeqnnError(f"{m['path']}: {key} {m[key]} differs from {first[key]} of "
                                 f"{first['path']}; ensemble models trained on the same data")
        if [t["identifier"] for t in m["tracks"]] != [t["identifier"] for t in first["tracks"]]:
            raise SeqnnError(f"{m['path']}: its tracks differ from those of {first['path']}; "
                             "ensemble models trained on the same track sheet")
    if seq_length is not None and first["seq_length"] != seq_length:
        raise SeqnnError(f"{first['path']}: the model reads {first['seq_length']} bp but "
                         f"data.seq_length is {seq_length}; predict with the models trained on "
                         "this data")
    return Ensemble([m["path"] for m in members], [m["model"] for m in members],
                    *(first[k] for k in ("seq_length", "target_length", "pool_width", "crop_bp",
                                         "tracks")))


def _forward(model, seq_length: int, batch_size: int, jit_compile: bool = False):
    """A compiled inference call of `model` for any batch size (the `members` interface).

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


def _clip_soft(value):
    return None if value is None or value != value else float(value)  # NaN: not given


def output_scale(tracks: list[dict], pool_width: int, untransform: bool = True):
    """Function mapping model outputs [..., tracks] to the output scale (None: unchanged).

    Untransformed values are in the input track's units per base: `coverage.untransform`
    (the pooled statistic), divided by the bin width for sum statistics.
    """
    if not untransform:
        return None

    groups = {}
    for i, t in enumerate(tracks):
        key = (t.get("sum_stat") or "sum", float(t.get("scale") or 1.0),
               _clip_soft(t.get("clip_soft")))
        groups.setdefault(key, []).append(i)

    def scale(y):
        out = np.empty_like(y)
        for (stat, factor, soft), idx in groups.items():
            per_base = pool_width if stat.startswith("sum") else 1
            out[..., idx] = inverse(y[..., idx], stat, factor, soft) / per_base
        return out

    return scale


class Members:
    """Mean and variance over models × augmentations of one batch, in one streaming pass."""

    def __init__(self, models, rc=False, shifts=(0,), strand_pair=None, scale=None,
                 variance=False):
        if not shifts:
            raise SeqnnError("shifts: give at least one shift, e.g. [0] or [-1, 0, 1]")
        self.models, self.rc, self.shifts = models, rc, tuple(shifts)
        self.strand_pair, self.scale, self.variance = strand_pair, scale, variance

    @property
    def per_model(self) -> int:
        return len(self.shifts) * (2 if self.rc else 1)

    def stats(self, x: np.ndarray, models) -> tuple[np.ndarray, np.ndarray | None]:
        n, mean, m2 = 0, 0.0, 0.0
        for model in models:
            for y in members(model, x, self.rc, self.shifts, self.strand_pair):
                y = self.scale(y) if self.scale else y
                n += 1
                delta = y - mean
                mean = mean + delta / n
                if self.variance:
                    m2 = m2 + delta * (y - mean)
        return mean, (m2 / n if self.variance else None)

    def __call__(self, x: np.ndarray, groups: np.ndarray | None = None):
        """Stats of x [B, L, 4]; `groups` [B, T] picks per bin a model (-1: all of them)."""
        if groups is None:
            return self.stats(x, self.models)
        mean = var = None
        for g in np.unique(groups):
            rows = (groups == g).any(axis=1)
            m, v = self.stats(x[rows], self.models if g < 0 else [self.models[g]])
            if mean is None:
                mean = np.zeros((len(x), *m.shape[1:]), np.float32)
                var = np.zeros_like(mean) if self.variance else None
            pick = (groups[rows] == g)[..., None]
            mean[rows] = np.where(pick, m, mean[rows])
            if self.variance:
                var[rows] = np.where(pick, v, var[rows])
        return mean, var


# ---------------------------------------------------------------------------------------------
# Tiling and stitching


@dataclass(frozen=True)
class Tiling:
    """Windows along a run of bins and how their bins are stitched (module docstring).

    Window w of a run predicts its bins t = 0..T-1 at run bins w*S - O//2 + t and starts at
    bp run_start + (w*S - O//2)*P - C.
    """

    target_length: int
    overlap: int
    stitch: str = "centre"

    def __post_init__(self):
        if self.stitch not in STITCH:
            raise SeqnnError(f"stitch {self.stitch!r} is not one of {', '.join(STITCH)}")
        if not 0 <= self.overlap < self.target_length:
            raise SeqnnError(f"overlap of {self.overlap} bins must be less than the model's "
                             f"{self.target_length} bins; lower predict.overlap")

    @property
    def stride(self) -> int:
        return self.target_length - self.overlap

    @property
    def lead(self) -> int:
        return self.overlap // 2

    @property
    def chunks(self) -> list[tuple[int, int, int]]:
        """(t0, t1, offset): window w adds its bins t0..t1-1 at run bins w*S + offset + ..."""
        t_len, s, a = self.target_length, self.stride, self.lead
        if self.stitch == "centre":
            return [(a, a + s, 0)]
        return [(t, min(t + s, t_len), t - a) for t in range(0, t_len, s)]

    def windows(self, b0: int, b1: int) -> range:
        """Windows that predict any of the run bins [b0, b1)."""
        t0, t1, last = self.chunks[-1]
        k0, k1 = self.chunks[0][2], last + t1 - t0
        return range((b0 - k1) // self.stride + 1, -((k0 - b1) // self.stride))

    def counts(self, bins: np.ndarray) -> np.ndarray | int:
        """How many windows predict each run bin."""
        if self.stitch == "centre":
            return 1
        p = bins + self.lead
        return p // self.stride - (p - self.target_length) // self.stride


class Stitcher:
    """Turns consecutive batches of window predictions into finished bins, carrying overlaps."""

    def __init__(self, tiling: Tiling):
        self.tiling = tiling
        self.tail = tiling.chunks[-1][2] - tiling.chunks[0][2]
        self.carry, self.next = None, None

    def add(self, w0: int, y: np.ndarray) -> tuple[int, np.ndarray]:
        """Add windows w0.. with bins y [n, T, K]: returns (first run bin, sums [m, K]) of the
        bins no later window touches. A batch not following the last one starts afresh."""
        s, k0 = self.tiling.stride, self.tiling.chunks[0][2]
        n, _, k = y.shape
        acc = np.zeros((n * s + self.tail, k), np.float32)
        if self.next == w0 and self.tail:
            acc[: self.tail] = self.carry
        for t0, t1, offset in self.tiling.chunks:
            block = y[:, t0:t1]
            if t1 - t0 < s:
                block = np.pad(block, ((0, 0), (0, s - (t1 - t0)), (0, 0)))
            acc[offset - k0 : offset - k0 + n * s] += block.reshape(n * s, k)
        self.carry, self.next = acc[n * s :], w0 + n
        return w0 * s + k0, acc[: n * s]


# ---------------------------------------------------------------------------------------------
# Regions, runs and shards


def read_regions(path: str, sizes: dict[str, int], aliases: dict[str, str] | None = None,
                 ) -> pd.DataFrame:
    """BED regions (chrom start end [name [score strand]]) on the genome, in FASTA names.

    Chromosomes may be named as in the FASTA or by their `aliases` (FASTA name -> alias).
    Regions on other chromosomes are reported and dropped, ends past a chromosome clipped;
    the original name stays in `bed_chrom`.
    """
    try:
        bed = pd.read_csv(path, sep="\t", header=None, comment="#", dtype={0: str})
    except (OSError, ValueError) as e:
        raise SeqnnError(f"{path}: not a readable BED file ({e}); give tab-separated chrom, "
                         "start, end columns") from e
    bed = bed[~bed[0].str.startswith(("track", "browser"))]
    if bed.shape[1] < 3:
        raise SeqnnError(f"{path}: fewer than 3 columns; give chrom, start, end (tab-separated)")
    try:
        df = pd.DataFrame({"bed_chrom": bed[0], "start": bed[1].astype(np.int64),
                           "end": bed[2].astype(np.int64)})
    except ValueError as e:
        raise SeqnnError(f"{path}: start/end are not integers ({e}); fix the BED") from e
    df["name"] = bed[3].astype(str) if bed.shape[1] > 3 else (
        df.bed_chrom + ":" + df.start.astype(str) + "-" + df.end.astype(str))
    df["strand"] = bed[5].astype(str) if bed.shape[1] > 5 else "+"
    inverse = {v: k for k, v in (aliases or {}).items()}
    df.insert(0, "chrom", df.bed_chrom.map(lambda c: c if c in sizes else inverse.get(c, c)))
    known = df.chrom.isin(list(sizes))
    if not known.all():
        missing = df.bed_chrom[~known].unique()
        log.warning("%s: %d region(s) on %d chromosome(s) not in the genome skipped (%s); the "
                    "genome has %s", path, (~known).sum(), len(missing), ", ".join(missing[:5]),
                    ", ".join(list(sizes)[:5]))
    df = df[known].reset_index(drop=True)
    if df.empty:
        raise SeqnnError(f"{path}: no region lies on a chromosome of the genome "
                         f"({', '.join(list(sizes)[:5])}…); use the FASTA's chromosome names")
    if (df.end < df.start).any() or (df.start < 0).any():
        raise SeqnnError(f"{path}: a region ends before it starts or starts below 0; fix it")
    size = df.chrom.map(sizes)
    if (df.end > size).any():
        log.warning("%s: %d region(s) end past their chromosome; clipped", path,
                    (df.end > size).sum())
        df["end"] = np.minimum(df.end, size)
    return df


def prediction_runs(sizes: dict[str, int], pool_width: int,
                    regions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Runs of bins to predict (chrom, start, end, bins) in genome order: whole chromosomes, or
    the regions snapped outward to the bin grid and merged."""
    if regions is None:
        regions = pd.DataFrame({"chrom": list(sizes), "start": 0, "end": list(sizes.values())})
    order = {c: i for i, c in enumerate(sizes)}
    df = regions[regions.end > regions.start].assign(
        start=lambda d: d.start // pool_width * pool_width,
        end=lambda d: np.minimum(-(-d.end // pool_width) * pool_width, d.chrom.map(sizes)),
        rank=lambda d: d.chrom.map(order),
    ).sort_values(["rank", "start"], kind="stable")
    # merge: a run starts where a region begins after every earlier region of its chromosome
    reach = df.groupby("rank").end.cummax().shift(fill_value=-1)
    new = (df["rank"] != df["rank"].shift()) | (df.start > reach)
    runs = df.groupby(new.cumsum()).agg(chrom=("chrom", "first"), start=("start", "min"),
                                         end=("end", "max")).reset_index(drop=True)
    runs["bins"] = -(-(runs.end - runs.start) // pool_width)
    return runs


def shard_pieces(runs: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Shard `shard` of `shards` near-equal parts of all bins: (chrom, start, b0, b1) pieces of
    runs (start: the run's first bp; b0, b1: run bins)."""
    total = int(runs.bins.sum())
    if not 1 <= shards <= total or not 0 <= shard < shards:
        raise SeqnnError(f"shard {shard} of {shards}: need 0 <= shard < shards <= {total} (the "
                         "bins to predict); lower predict.shards")
    lo, hi = shard * total // shards, (shard + 1) * total // shards
    bins = runs.bins.to_numpy()
    first = np.concatenate([[0], np.cumsum(bins)[:-1]])
    b0, b1 = np.clip(lo - first, 0, bins), np.clip(hi - first, 0, bins)
    keep = b1 > b0
    return pd.DataFrame({"chrom": runs.chrom.to_numpy()[keep], "start": runs.start.to_numpy()[keep],
                         "b0": b0[keep], "b1": b1[keep]})


class FoldMap:
    """Per bin, the index of the fold model that never trained on it (-1: none did)."""

    def __init__(self, contigs_bed: str, models: int):
        contigs = read_labelled_bed(contigs_bed)
        labels = contigs.label.str.extract(r"^fold(\d+)$")[0]
        if labels.isna().any() or labels.astype(int).max() >= models:
            raise SeqnnError(f"{contigs_bed}: cross_fold needs contigs labelled fold0.."
                             f"fold{models - 1}, one per model given (in fold order); got "
                             f"{', '.join(sorted(contigs.label.unique()))}")
        contigs = contigs.assign(fold=labels.astype(int)).sort_values(["chrom", "start"])
        self.by_chrom = {c: (g.start.to_numpy(), g.end.to_numpy(), g.fold.to_numpy())
                         for c, g in contigs.groupby("chrom")}

    def groups(self, chroms: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """Fold index of the contig holding each bp position [n, T] of windows on `chroms` [n]
        (-1 outside every contig)."""
        out = np.full(centres.shape, -1)
        for chrom in np.unique(chroms):
            if chrom not in self.by_chrom:
                continue
            rows = chroms == chrom
            starts, ends, folds = self.by_chrom[chrom]
            i = np.maximum(np.searchsorted(starts, centres[rows], side="right") - 1, 0)
            inside = (centres[rows] >= starts[i]) & (centres[rows] < ends[i])
            out[rows] = np.where(inside, folds[i], -1)
        return out


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
    """Appends row blocks [n, K] to HDF5 datasets [K, N] in whole chunks (bounded memory)."""

    def __init__(self, datasets):
        self.datasets, self.pos, self.pending, self.n = datasets, 0, [], 0

    def append(self, blocks):
        self.pending.append(blocks)
        self.n += len(blocks[0])
        if self.n >= CHUNK:
            self._flush(self.n // CHUNK * CHUNK)

    def _flush(self, m):
        joined = [np.concatenate(parts) for parts in zip(*self.pending)]
        for ds, block in zip(self.datasets, joined):
            ds[:, self.pos : self.pos + m] = block[:m].T
        self.pos, self.n = self.pos + m, self.n - m
        self.pending = [[b[m:] for b in joined]] if self.n else []

    def close(self):
        if self.n:
            self._flush(self.n)


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
    seq_length: int | None = None,
    aliases: dict[str, str] | None = None,
    threads: int | None = None,
    jit_compile: bool = False,
) -> dict:
    """Predict shard `shard` of `shards` of the genome (or of the `bed` regions) into HDF5 `out`.

    `overlap` is in bp, a multiple of the bin width (default: a quarter of the predicted span);
    `stitch`, `rc`, `shifts`, `untransform`, `variance` and `contigs` (cross-fold) are described
    in the module docstring; `jit_compile` runs the models through XLA (compiled once per job;
    measure whether it pays on your hardware). Returns a summary (windows, members, bins,
    seconds, bp/s).
    """
    set_threads(threads)
    ens = load_ensemble(models, head, seq_length)
    p, t_len = ens.pool_width, ens.target_length
    overlap = t_len // 4 * p if overlap is None else overlap
    if overlap % p:
        raise SeqnnError(f"overlap {overlap} bp is not a multiple of the {p} bp bins; "
                         "set predict.overlap to one")
    tiling = Tiling(t_len, overlap // p, stitch)
    sizes = chrom_sizes(fasta, fai)
    regions = read_regions(bed, sizes, aliases) if bed else None
    pieces = shard_pieces(prediction_runs(sizes, p, regions), shard, shards)
    folds = FoldMap(contigs, len(ens.models)) if contigs else None
    members = Members([_forward(m, ens.seq_length, batch_size, jit_compile) for m in ens.models],
                      rc, shifts,
                      ens.strand_pair, output_scale(ens.tracks, p, untransform), variance)

    # every window of the shard, piece by piece; a batch may span pieces (many small regions)
    s, a = tiling.stride, tiling.lead
    spans = [tiling.windows(b0, b1) for b0, b1 in zip(pieces.b0, pieces.b1)]
    piece_of = np.repeat(np.arange(len(pieces)), [len(w) for w in spans])
    w_of = np.concatenate([np.arange(w.start, w.stop) for w in spans])
    first_bin = (pieces.start.to_numpy() // p)[piece_of] + w_of * s - a  # of each window
    chroms = pieces.chrom.to_numpy()[piece_of]
    starts = first_bin * p - ens.crop_bp
    batches = [(chroms[i : i + batch_size], starts[i : i + batch_size])
               for i in range(0, len(starts), batch_size)]
    total_bins = int((pieces.b1 - pieces.b0).sum())
    tic = time.perf_counter()
    names = ["values", "variance"] if variance else ["values"]
    with atomic_path(out) as tmp, _open_shard(tmp, ens, pieces, sizes, aliases, untransform,
                                              names, total_bins, shard, shards) as h5:

        columns = _Columns([h5[n] for n in names])
        stitchers = [[Stitcher(tiling) for _ in names] for _ in range(len(pieces))]
        stream = one_hot_batches(fasta, fai, batches, ens.seq_length)
        for lo, x in tqdm(zip(range(0, len(starts), batch_size), stream), total=len(batches),
                          unit="batch", desc=f"shard {shard}", mininterval=5):
            rows = slice(lo, lo + len(x))
            groups = None
            if folds is not None:
                centres = (first_bin[rows, None] + np.arange(t_len)) * p + p // 2
                limit = np.array([sizes[c] - 1 for c in chroms[rows]])[:, None]
                groups = folds.groups(chroms[rows], np.minimum(centres, limit))
            stats = [y for y in members(x, groups) if y is not None]
            cuts = np.flatnonzero(np.diff(piece_of[rows])) + 1
            for seg in np.split(np.arange(len(x)), cuts):
                i = piece_of[lo + seg[0]]
                done = [st.add(w_of[lo + seg[0]], y[seg]) for st, y in zip(stitchers[i], stats)]
                b = done[0][0] + np.arange(len(done[0][1]))
                keep = (b >= pieces.b0[i]) & (b < pieces.b1[i])
                counts = tiling.counts(b[keep])
                counts = counts[:, None] if np.ndim(counts) else counts
                columns.append([v[keep] / counts for _, v in done])
        columns.close()
        if columns.pos != total_bins:
            raise SeqnnError(f"{out}: wrote {columns.pos} of {total_bins} bins; report this bug")
    seconds = time.perf_counter() - tic
    ends = np.minimum(pieces.start + pieces.b1 * p, pieces.chrom.map(sizes))
    bp = int((ends - pieces.start - pieces.b0 * p).sum())
    per_bin = members.per_model * (1 if folds else len(ens.models))  # outside contigs: all
    summary = {"shard": shard, "shards": shards, "windows": len(starts),
               "members": per_bin, "bins": total_bins, "bp": bp,
               "seconds": round(seconds, 2), "bp_per_s": round(bp / max(seconds, 1e-9))}
    log.info("predict shard %d/%d: %d windows x %d members, %d bins (%.2f Mb) in %.1f s "
             "(%.0f bp/s)", shard, shards, summary["windows"], summary["members"], total_bins,
             bp / 1e6, seconds, summary["bp_per_s"])
    return summary


def _open_shard(path, ens, pieces, sizes, aliases, untransform, names, total_bins, shard,
                shards):
    """An HDF5 shard file with its attributes, piece table and empty [K, bins] datasets."""
    f = h5py.File(path, "w")
    f.attrs.update({
        "shard": shard,
        "shards": shards,
        "tracks": json.dumps(ens.tracks, default=str),
        "pool_width": ens.pool_width,
        "chrom_sizes": json.dumps(list(sizes.items())),
        "aliases": json.dumps(aliases or {}),
        "untransformed": bool(untransform),
        "models": json.dumps(ens.paths),
    })
    bins = (pieces.b1 - pieces.b0).to_numpy(np.int64)
    f.create_dataset("piece_chrom", data=pieces.chrom.to_numpy().astype("S"))
    f.create_dataset("piece_start", data=(pieces.start + pieces.b0 * ens.pool_width)
                     .to_numpy(np.int64))
    f.create_dataset("piece_bins", data=bins)
    f.create_dataset("piece_offset", data=np.concatenate([[0], np.cumsum(bins)[:-1]]))
    for name in names:
        f.create_dataset(name, (len(ens.tracks), total_bins), np.float32,
                         chunks=(1, min(CHUNK, total_bins)), track_times=False)
    return f


# ---------------------------------------------------------------------------------------------
# Gathering


class Predictions:
    """The shard files of one prediction read as one: pieces in genome order, values by bin."""

    def __init__(self, paths: Sequence[str]):
        if not paths:
            raise SeqnnError("predict: no shard file given; run the predict step first")
        self.files = [h5py.File(p, "r") for p in paths]
        try:
            self._index(paths)
        except BaseException:
            self.__exit__()
            raise

    def _index(self, paths):
        attrs = self.files[0].attrs
        self.tracks = json.loads(attrs["tracks"])
        self.pool_width = int(attrs["pool_width"])
        self.chrom_sizes = dict(json.loads(attrs["chrom_sizes"]))
        self.aliases = json.loads(attrs["aliases"])
        self.untransformed = bool(attrs["untransformed"])
        order = [int(f.attrs["shard"]) for f in self.files]
        if order != list(range(int(attrs["shards"]))):
            raise SeqnnError(f"{paths[0]}: got shards {order} of {attrs['shards']}; give every "
                             "shard file of the prediction, in shard order")
        parts = []
        for i, (path, f) in enumerate(zip(paths, self.files)):
            for key in ("tracks", "pool_width", "chrom_sizes", "aliases", "untransformed",
                        "shards"):
                if f.attrs[key] != attrs[key]:
                    raise SeqnnError(f"{path}: its {key} differ from those of {paths[0]}; "
                                     "gather shards of one prediction (rerun predict)")
            parts.append(pd.DataFrame({
                "chrom": f["piece_chrom"][:].astype(str), "start": f["piece_start"][:],
                "bins": f["piece_bins"][:], "offset": f["piece_offset"][:], "file": i}))
        self.pieces = pd.concat(parts, ignore_index=True)
        self.has_variance = "variance" in self.files[0]
        first = self.pieces.start.to_numpy() // self.pool_width
        self._by_chrom = {  # pieces of each chromosome in order: first bin, bins, offset, file
            c: np.stack([first[rows], *(self.pieces[k].to_numpy()[rows]
                                        for k in ("bins", "offset", "file"))], 1)
            for c, rows in self.pieces.groupby("chrom", sort=False).indices.items()}
        self._datasets = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for f in self.files:
            f.close()

    @property
    def identifiers(self) -> list[str]:
        return [str(t["identifier"]) for t in self.tracks]

    def track_index(self, track: str) -> int:
        if track not in self.identifiers:
            raise SeqnnError(f"track {track!r} was not predicted; the models predict "
                             f"{', '.join(self.identifiers)}")
        return self.identifiers.index(track)

    def dataset(self, variance: bool = False) -> str:
        if variance and not self.has_variance:
            raise SeqnnError("the shards hold no variance; predict with variance on")
        return "variance" if variance else "values"

    def read(self, chrom: str, b0: int, b1: int, variance: bool = False) -> np.ndarray:
        """Values [K, b1 - b0] of chromosome bins b0..b1-1 (NaN where not predicted)."""
        out = np.full((len(self.tracks), b1 - b0), np.nan, np.float32)
        name = self.dataset(variance)
        pieces = self._by_chrom.get(chrom, np.zeros((0, 4), np.int64))
        i = max(np.searchsorted(pieces[:, 0], b0, side="right") - 1, 0)
        for first, bins, offset, file in pieces[i:]:
            lo, hi = max(b0, first), min(b1, first + bins)
            if first >= b1:
                break
            if hi > lo:
                ds = self._datasets.setdefault((file, name), self.files[file][name])
                out[:, lo - b0 : hi - b0] = ds[:, offset + lo - first : offset + hi - first]
        return out


def write_bigwig(shards: Sequence[str], track: str, out: str, variance: bool = False) -> int:
    """One track of the shards (values or variance) as a bigWig of P-bp bins with the genome's
    chromosome sizes (chromosomes renamed by the prediction's aliases). Returns the bins."""
    with Predictions(shards) as pred, atomic_path(out) as tmp:
        i, name, p = pred.track_index(track), pred.dataset(variance), pred.pool_width
        names = {c: pred.aliases.get(c, c) for c in pred.chrom_sizes}
        bw = pyBigWig.open(tmp, "w")
        bw.addHeader([(names[c], n) for c, n in pred.chrom_sizes.items()], maxZooms=10)
        for piece in pred.pieces.itertuples():
            size = pred.chrom_sizes[piece.chrom]
            for lo in range(0, piece.bins, CHUNK):
                hi = min(lo + CHUNK, piece.bins)
                at = piece.offset + lo
                values = pred.files[piece.file][name][i, at : at + hi - lo].astype(np.float64)
                start = piece.start + lo * p
                whole = min(len(values), (size - start) // p)  # the last bin may be cut short
                if whole:
                    bw.addEntries(names[piece.chrom], int(start), values=values[:whole],
                                  span=p, step=p)
                if whole < len(values):
                    bw.addEntries([names[piece.chrom]], [int(start + whole * p)], ends=[size],
                                  values=values[whole:].tolist())
        bw.close()
        bins = int(pred.pieces.bins.sum())
    log.info("%s: %s of %s, %d bins of %d bp", out, name, track, bins, p)
    return bins


def _region_bins(regions: pd.DataFrame, p: int) -> tuple[np.ndarray, np.ndarray]:
    return (regions.start // p).to_numpy(), (-(-regions.end // p)).to_numpy()


def _write_table(f, regions: pd.DataFrame, **columns) -> None:
    """Region columns (chrom as in the BED, start, end, name) and int64 `columns` into HDF5."""
    f.create_dataset("chrom", data=regions.bed_chrom.to_numpy().astype("S"))
    f.create_dataset("name", data=regions.name.to_numpy().astype("S"))
    for key, data in {"start": regions.start, "end": regions.end, **columns}.items():
        f.create_dataset(key, data=np.asarray(data, np.int64))


def _mean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN (NaN where all are)."""
    n = np.isfinite(values).sum(-1)
    return np.where(n > 0, np.nansum(values, -1) / np.maximum(n, 1), np.nan)


def write_regions(shards: Sequence[str], bed: str, out: str) -> int:
    """HDF5 of the predicted bins of each BED region, ragged: region i's values are
    `values[:, offset[i]:offset[i+1]]` ([tracks, bins], NaN where not predicted), its first bin
    starting at `bin_start[i]`; also `chrom`, `start`, `end`, `name` and `variance` if any."""
    with Predictions(shards) as pred, atomic_path(out) as tmp:
        regions = read_regions(bed, pred.chrom_sizes, pred.aliases)
        b0, b1 = _region_bins(regions, pred.pool_width)
        offset = np.concatenate([[0], np.cumsum(b1 - b0)]).astype(np.int64)
        kinds = [False, True] if pred.has_variance else [False]
        with h5py.File(tmp, "w") as f:
            _write_table(f, regions, bin_start=b0 * pred.pool_width, offset=offset)
            f.attrs.update({"tracks": json.dumps(pred.identifiers),
                            "pool_width": pred.pool_width, "untransformed": pred.untransformed})
            for var in kinds:
                ds = f.create_dataset(pred.dataset(var), (len(pred.tracks), offset[-1]),
                                      np.float32, track_times=False)
                for j, (chrom, lo, hi) in enumerate(zip(regions.chrom, b0, b1)):
                    ds[:, offset[j] : offset[j + 1]] = pred.read(chrom, lo, hi, var)
    log.info("%s: %d regions, %d bins", out, len(regions), offset[-1])
    return len(regions)


def tss_summary(shards: Sequence[str], bed: str, out: str, window: int = 1000) -> pd.DataFrame:
    """TSV, one row per TSS of a BED6 (position: start on +, end - 1 on -): per track the mean
    of the predicted bins within `window` bp of the TSS, in the bigWigs' units."""
    with Predictions(shards) as pred:
        tss = read_regions(bed, pred.chrom_sizes, pred.aliases)
        pos = np.where(tss.strand == "-", tss.end - 1, tss.start)
        win = tss.assign(start=np.maximum(pos - window, 0), end=pos + window + 1)
        b0, b1 = _region_bins(win, pred.pool_width)
        means = np.stack([_mean(pred.read(c, lo, hi)) for c, lo, hi in zip(tss.chrom, b0, b1)])
    table = pd.concat([
        tss[["bed_chrom", "start", "end", "name", "strand"]].rename(columns={"bed_chrom": "chrom"}),
        pd.DataFrame(means, columns=pred.identifiers)], axis=1)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="nan")
    log.info("%s: %d TSSs, %d tracks, window ±%d bp", out, len(table), len(pred.tracks), window)
    return table


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
    on each BED region (as Basenji's embed), with the regions and `window_start`."""
    set_threads(threads)
    member = _member(model_path, None)
    sub = embedding_model(member["model"], layer)
    length = member["seq_length"]
    regions = read_regions(bed, chrom_sizes(fasta, fai), aliases)
    starts = ((regions.start + regions.end) // 2 - length // 2).to_numpy()
    chroms = regions.chrom.to_numpy()
    batches = [(chroms[i : i + batch_size], starts[i : i + batch_size])
               for i in range(0, len(regions), batch_size)]
    forward = _forward(sub, length, batch_size, jit_compile)
    shape = (len(regions), *sub.output_shape[1:])
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset("embeddings", shape, np.float32, track_times=False)
        for (i, x) in zip(range(0, len(regions), batch_size),
                          one_hot_batches(fasta, fai, batches, length)):
            ds[i : i + len(x)] = np.asarray(forward(x))
        _write_table(f, regions, window_start=starts)
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
    `variance/{track}.bw`, and optionally `regions.h5` (needs `bed`), `tss.tsv` and
    `embeddings.h5` (first model). `options` are those of `predict_shard`."""
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
