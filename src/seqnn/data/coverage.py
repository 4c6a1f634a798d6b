"""Coverage tracks: read bigWig / BAM values per sequence, transform to binned targets and back.

The transform follows baskerville's current one (hound_data_read): base-level values ->
crop -> scale -> pool per bin by `sum_stat` (with the sqrt / exp75 power of the *_sqrt and
*_exp75 stats) -> soft clip above `clip_soft` -> hard clip at `clip`, in float16 range.
`untransform` inverts every step but the hard clip, giving the pooled statistic in the input's
units (e.g. the sum of base values in the bin for `sum`, their mean for `mean`).
"""

from __future__ import annotations

import math
import os
import struct

import h5py
import numpy as np
import pandas as pd
import pyBigWig
import pysam

from seqnn import SeqnnError
from seqnn.data.bed import read_bed, read_labelled_bed
from seqnn.io import atomic_path

POOLS = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "median": np.median}
POWERS = {"sqrt": 0.5, "exp75": 0.75}
SUM_STATS = sorted(
    [*POOLS, "avg"] + [f"{p}_{w}" for p in ("sum", "mean", "avg") for w in POWERS]
)
F16_MAX = float(np.finfo(np.float16).max)
CHUNK_BP = 4_000_000  # bases read from a track at once
BIGWIG_MAGIC = 0x888FFC26


def _parse_stat(sum_stat: str) -> tuple[str, float | None]:
    """Pooling function name and power of a sum_stat (e.g. 'sum_sqrt' -> ('sum', 0.5))."""
    if sum_stat not in SUM_STATS:
        raise SeqnnError(f"sum_stat {sum_stat!r} is unknown; use one of {', '.join(SUM_STATS)}")
    pool, _, power = sum_stat.partition("_")
    return ("mean" if pool == "avg" else pool), POWERS.get(power)


def _given(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def transform(
    values: np.ndarray,
    pool_width: int,
    sum_stat: str = "sum",
    scale: float = 1.0,
    clip_soft: float | None = None,
    clip: float | None = None,
    crop_bp: int = 0,
) -> np.ndarray:
    """Binned targets float32 [n, target_length] of base-level values [n, seq_length]."""
    pool, power = _parse_stat(sum_stat)
    values = np.asarray(values, dtype=np.float32)
    if crop_bp:
        values = values[:, crop_bp : values.shape[1] - crop_bp]
    n, length = values.shape
    binned = POOLS[pool](values.reshape(n, length // pool_width, pool_width) * scale, axis=2)
    binned = binned.astype(np.float32)
    if power is not None:
        binned = (1 + binned) ** power - 1
    if _given(clip_soft):
        over = binned > clip_soft
        binned[over] = clip_soft - 1 + np.sqrt(binned[over] - clip_soft + 1)
    if _given(clip):
        binned = np.clip(binned, -clip, clip)
    return np.clip(binned, -F16_MAX, F16_MAX)


def untransform(
    targets: np.ndarray,
    sum_stat: str = "sum",
    scale: float = 1.0,
    clip_soft: float | None = None,
) -> np.ndarray:
    """Invert `transform` (all but the hard clip): pooled statistic in the input's units."""
    _, power = _parse_stat(sum_stat)
    y = np.array(targets, dtype=np.float32)
    if _given(clip_soft):
        over = y > clip_soft
        y[over] = (y[over] - clip_soft + 1) ** 2 + clip_soft - 1
    if power is not None:
        y = (1 + y) ** (1 / power) - 1
    return y / scale


def track_untransform(tracks, pool_width: int | None = None):
    """`untransform` of each track of ``[..., tracks]`` arrays by its row of a track sheet
    (sum_stat, scale, clip_soft; a DataFrame or row dicts), tracks alike done together. With
    `pool_width`, sum statistics are divided by it: the input track's units per base."""
    rows = tracks.to_dict("records") if isinstance(tracks, pd.DataFrame) else tracks
    groups = {}
    for i, t in enumerate(rows):
        soft = float(t["clip_soft"]) if _given(t.get("clip_soft")) else None
        key = (t.get("sum_stat") or "sum", float(t.get("scale") or 1.0), soft)
        groups.setdefault(key, []).append(i)

    def apply(y: np.ndarray) -> np.ndarray:
        out = np.empty(np.shape(y), np.float32)
        for (stat, scale, soft), cols in groups.items():
            per_base = pool_width if pool_width and stat.startswith("sum") else 1
            out[..., cols] = untransform(y[..., cols], stat, scale, soft) / per_base
        return out

    return apply


def _bigwig_summary(path: str) -> tuple[int, float, float, float]:
    """Bases covered, min, max and sum of a bigWig's whole-file summary (zeros if it has none)."""
    with open(path, "rb") as f:
        head = f.read(64)
        order = "<" if struct.unpack("<I", head[:4])[0] == BIGWIG_MAGIC else ">"
        offset = struct.unpack(order + "IHHQQQHHQQIQ", head)[9]
        if not offset:
            return 0, 0.0, 0.0, 0.0
        f.seek(offset)
        return struct.unpack(order + "Qddd", f.read(32))


class BigWigTrack:
    """Base-level values of a bigWig (NaN where it has no data)."""

    def __init__(self, path: str):
        try:
            self.bw = pyBigWig.open(path)
        except RuntimeError:
            self.bw = None
        if not self.bw or not self.bw.isBigWig():
            raise SeqnnError(f"{path}: cannot open as bigWig; check the path and the file format")
        self.path = path
        self.chroms = self.bw.chroms()
        # pyBigWig's header() rounds minVal to an integer and crashes on NaN: read it here.
        covered, self.min_value, max_value, total = _bigwig_summary(path)
        self.has_nan = math.isnan(total) or math.isnan(max_value)
        if not covered:
            self.min_value = 0.0

    def values(self, chrom: str, start: int, end: int) -> np.ndarray:
        values = self.bw.values(chrom, start, end, numpy=True)
        if len(values) != end - start:  # a chromosome without data reads as empty
            return np.full(end - start, np.nan, np.float32)
        return values.astype(np.float32, copy=False)


class BamTrack:
    """Read coverage or 5' end counts of a BAM, optionally of one transcript strand."""

    def __init__(self, path: str, strand: str | None = None, count: str = "read",
                 min_mapq: int = 0, reverse_strand: bool = False):

        try:
            self.bam = pysam.AlignmentFile(path, "rb")
            self.bam.check_index()
        except (OSError, ValueError) as e:
            raise SeqnnError(f"{path}: cannot read as an indexed BAM ({e}); "
                             "run samtools index") from e
        self.path, self.strand, self.count = path, strand, count
        self.min_mapq, self.reverse_strand = min_mapq, reverse_strand
        self.chroms = dict(zip(self.bam.references, self.bam.lengths, strict=True))
        self.has_nan, self.min_value = False, 0.0

    def _on_strand(self, read) -> bool:
        if self.strand not in ("+", "-"):
            return True
        forward = read.is_reverse == (read.is_read2 != self.reverse_strand)
        return forward == (self.strand == "+")

    def values(self, chrom: str, start: int, end: int) -> np.ndarray:
        pos, weight = [], []
        for read in self.bam.fetch(chrom, start, end):
            if (read.is_unmapped or read.is_secondary or read.is_supplementary or read.is_duplicate
                    or read.is_qcfail or read.mapping_quality < self.min_mapq
                    or not self._on_strand(read)):
                continue
            if self.count == "5p":
                pos.append(read.reference_end - 1 if read.is_reverse else read.reference_start)
                weight.append(1)
            else:
                for a, b in read.get_blocks():
                    pos += (a, b)
                    weight += (1, -1)
        pos = np.asarray(pos, dtype=np.int64) - start
        weight = np.asarray(weight, dtype=np.int64)
        if self.count == "5p":
            inside = (pos >= 0) & (pos < end - start)
            return np.bincount(pos[inside], weight[inside], end - start).astype(np.float32)
        diff = np.bincount(np.clip(pos, 0, end - start), weight, end - start + 1)
        return np.cumsum(diff[:-1]).astype(np.float32)


def open_track(path: str, bam_strand: str | None = None, **bam_options):
    """A bigWig or BAM track reader chosen by file extension."""
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise SeqnnError(f"{path}: track file is missing or unreadable; fix its path in the sheet")
    if path.lower().endswith(".bam"):
        return BamTrack(path, strand=bam_strand, **bam_options)
    return BigWigTrack(path)


def _same_chrom(chrom: str, names) -> str | None:
    """The name in `names` of FASTA chromosome `chrom` up to case and a `chr` prefix."""
    key = chrom.lower().removeprefix("chr")
    return next((n for n in names if n.lower().removeprefix("chr") == key), None)


def check_track(track, sizes: dict[str, int], aliases: dict[str, str] | None = None,
                negative: str = "error") -> None:
    """Fail with one line when a track's chromosomes, lengths or values do not fit the genome."""
    aliases = aliases or {}
    names = {chrom: aliases.get(chrom, chrom) for chrom in sizes}
    missing = [chrom for chrom, name in names.items() if name not in track.chroms]
    if missing:
        alt = {c: _same_chrom(c, track.chroms) for c in missing}
        pairs = ", ".join(f"{c}: {a}" for c, a in alt.items())
        hint = (f"set genome.chrom_aliases: {{{pairs}}}" if all(alt.values()) else
                "map FASTA names to the track's in genome.chrom_aliases, restrict genome.chroms "
                "or fix the track")
        has = ", ".join(list(track.chroms)[:4]) + ("…" if len(track.chroms) > 4 else "")
        raise SeqnnError(f"{track.path}: no chromosome {', '.join(names[c] for c in missing)} "
                         f"of the FASTA (it has {has}); {hint}")
    for chrom, length in sizes.items():
        name = names[chrom]
        if track.chroms[name] != length:
            raise SeqnnError(
                f"{track.path}: chromosome {name} is {track.chroms[name]:,} bp but "
                f"{length:,} bp in the FASTA; use a track made on the same assembly"
            )
    if track.has_nan:
        raise SeqnnError(f"{track.path}: the track stores NaN values; remove those intervals from "
                         "the file (bases left out of a bigWig read as data.nan_value)")
    if track.min_value < 0 and negative == "error":
        raise SeqnnError(
            f"{track.path}: negative values (min {track.min_value:g}); coverage must be >= 0 "
            "for count losses: fix the track or set data.negative: clip"
        )


def _mask_blocks(masks: pd.DataFrame | None, chrom: str, lo: int, hi: int) -> np.ndarray | None:
    """Boolean [hi - lo] of the masked bases of chrom:lo-hi, or None when none are."""
    if masks is None or masks.empty:
        return None
    reg = masks[(masks.chrom == chrom) & (masks.end > lo) & (masks.start < hi)]
    if reg.empty:
        return None
    diff = np.zeros(hi - lo + 1, dtype=np.int32)
    np.add.at(diff, np.clip(reg.start.to_numpy() - lo, 0, hi - lo), 1)
    np.add.at(diff, np.clip(reg.end.to_numpy() - lo, 0, hi - lo), -1)
    return np.cumsum(diff[:-1]) > 0


def sequence_values(
    track,
    seqs: pd.DataFrame,
    aliases: dict[str, str] | None = None,
    nan_value: float | str = 0.0,
    masks: pd.DataFrame | None = None,
    negative: str = "error",
):
    """Yield (row indices, base values float32 [n, seq_length]) over `seqs`, chunk by chunk.

    NaN becomes `nan_value` (a number, or "baseline": the sequence's median); masked bases
    (blacklist / unmappable) are clipped to that baseline, as Basenji does.
    """
    aliases = aliases or {}
    seq_length = int((seqs.end - seqs.start).iloc[0])
    for chrom, rows in seqs.groupby("chrom", sort=False).indices.items():
        rows = rows[np.argsort(seqs.start.to_numpy()[rows], kind="stable")]
        starts = seqs.start.to_numpy()[rows]
        chunk_id = (starts - starts[0]) // max(CHUNK_BP - seq_length, seq_length)
        for c in np.unique(chunk_id):
            sel = chunk_id == c
            lo, hi = int(starts[sel][0]), int(starts[sel][-1]) + seq_length
            block = track.values(aliases.get(chrom, chrom), lo, hi)
            index = (starts[sel] - lo)[:, None] + np.arange(seq_length)
            values = block[index]
            need_baseline = nan_value == "baseline" or masks is not None
            baseline = np.nanmedian(values, axis=1, keepdims=True) if need_baseline else None
            if baseline is not None:
                baseline = np.nan_to_num(baseline)
            fill = baseline if nan_value == "baseline" else np.float32(nan_value)
            values = np.where(np.isnan(values), fill, values)
            mask = _mask_blocks(masks, chrom, lo, hi)
            if mask is not None:
                values = np.where(mask[index], np.minimum(values, baseline), values)
            if negative == "clip":
                np.maximum(values, 0, out=values)
            yield rows[sel], values


def compute_targets(track, seqs: pd.DataFrame, row: dict, pool_width: int, crop_bp: int = 0,
                    **read_options) -> np.ndarray:
    """Transformed targets float16 [num_seqs, target_length] of one track-sheet row."""
    seq_length = int((seqs.end - seqs.start).iloc[0])
    out = np.zeros((len(seqs), (seq_length - 2 * crop_bp) // pool_width), dtype=np.float16)
    for rows, values in sequence_values(track, seqs, **read_options):
        out[rows] = transform(
            values, pool_width, row["sum_stat"], row["scale"], row.get("clip_soft"),
            row.get("clip"), crop_bp,
        )
    return out


def write_targets(path: str, targets: np.ndarray, attrs: dict) -> None:
    """Write targets to h5 dataset `targets` (atomically, without timestamps)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("targets", data=targets, track_times=False)
        for key, value in attrs.items():
            f.attrs[key] = value


def read_targets(path: str, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["targets"][rows]


def write_coverage(
    row: dict,
    sequences_bed: str,
    out: str,
    sizes: dict[str, int],
    pool_width: int,
    crop_bp: int = 0,
    chrom_aliases: dict[str, str] | None = None,
    nan_value: float | str = 0.0,
    negative: str = "error",
    blacklist: str | None = None,
    unmappable: str | None = None,
    bam: dict | None = None,
) -> np.ndarray:
    """coverage/{track}.h5: the track's targets for every sequence of sequences.bed.

    Args:
        row: the track's sheet row (file, clip, clip_soft, scale, sum_stat, bam_strand...).
        sequences_bed: the windows (chrom, start, end, label).
        out: the HDF5 file to write (`targets [num_seqs, target_length]` float16).
        sizes: chromosome sizes of the FASTA.
        pool_width: bin width in bp.
        crop_bp: bp cropped from each end of a window.
        chrom_aliases: FASTA name -> name in the track file.
        nan_value: value for bases without data, or "baseline" (the window's median).
        negative: "error" or "clip" for negative values.
        blacklist: BED whose bases are clipped to the window's baseline.
        unmappable: BED treated as the blacklist.
        bam: BAM counting options (count, min_mapq, reverse_strand).
    """
    seqs = read_labelled_bed(sequences_bed)
    track = open_track(row["file"], row.get("bam_strand") or None, **(bam or {}))
    used = {c: sizes[c] for c in seqs.chrom.unique()}
    check_track(track, used, chrom_aliases, negative)
    masks = pd.concat([read_bed(blacklist), read_bed(unmappable)], ignore_index=True)
    targets = compute_targets(
        track, seqs, row, pool_width, crop_bp, aliases=chrom_aliases, nan_value=nan_value,
        masks=None if masks.empty else masks, negative=negative,
    )
    attrs = {k: str(row.get(k)) for k in ("identifier", "file", "sum_stat", "scale", "clip",
                                          "clip_soft")}
    write_targets(out, targets, attrs)
    return targets
