"""Prediction shard files and what is gathered from them: bigWigs, region values, TSS summaries.

A shard file (HDF5, written by `seqnn.apply.predict.predict_shard` through `open_shard`) holds
`values`, and `variance` with it, each [tracks, bins] float32 in pieces of consecutive bins
listed by `piece_chrom`, `piece_start` (bp), `piece_bins` and `piece_offset` (column of the
piece's first bin); attributes: shard, shards, tracks (the sheet as JSON), pool_width,
chrom_sizes, aliases, untransformed, models. `Predictions` reads the shards of one prediction
as one; `write_bigwig`, `write_regions` and `tss_summary` gather them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import h5py
import numpy as np
import pandas as pd
import pyBigWig

from seqnn import SeqnnError
from seqnn.data.bed import read_regions
from seqnn.io import atomic_path, write_tsv

log = logging.getLogger("seqnn")

CHUNK = 16384  # bins per HDF5 chunk and per bigWig write


# ---------------------------------------------------------------------------------------------
# Shard files


def open_shard(path: str, ens, pieces: pd.DataFrame, sizes: dict[str, int],
               aliases: dict[str, str] | None, untransform: bool, names: Sequence[str],
               shard: int, shards: int, dtype=np.float32) -> h5py.File:
    """A shard file (module docstring) of ensemble `ens` with its attributes, the piece table of
    `pieces` (chrom, start, b0, b1: `tiling.shard_pieces`) and empty [K, bins] datasets `names`
    of `dtype`."""
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
    total_bins = int(bins.sum())
    f.create_dataset("piece_chrom", data=pieces.chrom.to_numpy().astype("S"))
    f.create_dataset("piece_start", data=(pieces.start + pieces.b0 * ens.pool_width)
                     .to_numpy(np.int64))
    f.create_dataset("piece_bins", data=bins)
    f.create_dataset("piece_offset", data=np.concatenate([[0], np.cumsum(bins)[:-1]]))
    for name in names:
        f.create_dataset(name, (len(ens.tracks), total_bins), dtype,
                         chunks=(1, min(CHUNK, total_bins)), track_times=False)
    return f


class Predictions:
    """The shard files of one prediction read as one: pieces in genome order, values by bin."""

    def __init__(self, paths: Sequence[str]):
        if not paths:
            raise SeqnnError("predict: no shard file given; run the predict step first")
        self.files = [h5py.File(path, "r") for path in paths]
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
        i, name, pool = pred.track_index(track), pred.dataset(variance), pred.pool_width
        names = {c: pred.aliases.get(c, c) for c in pred.chrom_sizes}
        bw = pyBigWig.open(tmp, "w")
        bw.addHeader([(names[c], n) for c, n in pred.chrom_sizes.items()], maxZooms=10)
        for piece in pred.pieces.itertuples():
            size = pred.chrom_sizes[piece.chrom]
            for lo in range(0, piece.bins, CHUNK):
                hi = min(lo + CHUNK, piece.bins)
                at = piece.offset + lo
                values = pred.files[piece.file][name][i, at : at + hi - lo].astype(np.float64)
                start = piece.start + lo * pool
                whole = min(len(values), (size - start) // pool)  # the last bin may be cut
                if whole:
                    bw.addEntries(names[piece.chrom], int(start), values=values[:whole],
                                  span=pool, step=pool)
                if whole < len(values):
                    bw.addEntries([names[piece.chrom]], [int(start + whole * pool)], ends=[size],
                                  values=values[whole:].tolist())
        bw.close()
        bins = int(pred.pieces.bins.sum())
    log.info("%s: %s of %s, %d bins of %d bp", out, name, track, bins, pool)
    return bins


def _region_bins(regions: pd.DataFrame, pool: int) -> tuple[np.ndarray, np.ndarray]:
    return (regions.start // pool).to_numpy(), (-(-regions.end // pool)).to_numpy()


def write_region_table(f: h5py.File, regions: pd.DataFrame, **columns) -> None:
    """Region columns (chrom as in the BED, start, end, name: `bed.read_regions`) and int64
    `columns` (start and end among them replace the regions') into HDF5 `f`."""
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
            write_region_table(f, regions, bin_start=b0 * pred.pool_width, offset=offset)
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
    write_tsv(table, out)
    log.info("%s: %d TSSs, %d tracks, window ±%d bp", out, len(table), len(pred.tracks), window)
    return table
