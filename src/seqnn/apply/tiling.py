"""Tiling a genome into model windows and stitching their predictions back into bins.

Geometry. A model reads L = `seq_length` bp and predicts T = `target_length` bins of
P = `pool_width` bp for its centre L - 2C bp (C = `crop_bp`). Output bins lie on the genome
grid: bin i of a chromosome covers [iP, (i + 1)P); the last one is cut at the chromosome end.
Windows step by S = T - O bins (O: the overlap in bins) and are padded with N past the ends.

Stitching. ``centre`` (default): every bin takes the window in which it lies most centrally:
window w keeps its bins [O//2, O//2 + S), so each bin comes from exactly one window. ``average``:
every bin is the mean over all windows that predict it (T/S of them on average).

Runs and shards. The bins to predict, of whole chromosomes or of BED regions snapped to the grid
and merged (`prediction_runs`), are cut into `shards` pieces of near-equal size
(`shard_pieces`).

Cross-fold. Given contigs.bed, a bin whose centre (cut at the chromosome end) lies in a fold-k
contig is predicted by model k alone (model f{k} was tested on fold k: it never trained on that
sequence); bins outside every contig by all models (`FoldMap`). Models come in fold order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqnn import SeqnnError
from seqnn.data.bed import read_labelled_bed

STITCH = ("centre", "average")


# ---------------------------------------------------------------------------------------------
# Windows and stitching


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
        shifted = bins + self.lead
        return shifted // self.stride - (shifted - self.target_length) // self.stride


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
# Runs, shards and folds


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
