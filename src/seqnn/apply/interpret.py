"""Interpretation of BED regions: gradient maps and ISM into HDF5, contribution bigWigs.

Regions. `gradient_maps` and `ism` centre a seq_length window on each BED region (its midpoint
(start + end) // 2) or, with `tss`, on its TSS (start on +, end - 1 on -; the BED's 6th column,
+ when absent), read the FASTA (N past chromosome ends) and write HDF5 (`GRADIENT_LAYOUT`,
`ISM_LAYOUT`). Regions on chromosomes absent from the FASTA are skipped, logged and counted
(`skipped` in the summary and the file's attributes), or stop the run with ``missing="error"``.
Contribution bigWigs (one per selected track, 1 bp entries, chromosomes as the FASTA or its
aliases) cover every window, each base from the window whose centre is nearest (ties: the
window starting first), the rule of centre stitching; they are computed from the stored
gradients.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd
import pyBigWig

from seqnn import SeqnnError
from seqnn.apply.attribution import (
    Aggregate,
    Statistic,
    bin_windows,
    input_x_gradient,
    strand_tracks,
    tss_windows,
    untransform_params,
)
from seqnn.apply.ensemble import Ensemble, load_ensemble
from seqnn.apply.gather import write_region_table
from seqnn.apply.interpreter import ISM_STATS, ISM_WIDTH, Interpreter
from seqnn.apply.outputs import MemberWriter
from seqnn.data.bed import REGION_COLUMNS, place_regions, read_bed
from seqnn.data.dna import one_hot
from seqnn.data.fasta import chrom_sizes, fetch_codes, open_fasta
from seqnn.io import atomic_path
from seqnn.log import Progress
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")

MISSING = ("skip", "error")

GRADIENT_LAYOUT = """\
seqs         uint8 [N, L, 4]      one-hot input windows (N: all zeros)
grads        dtype [N, L, 4, K]   mean gradient of each selected track's statistic (float16 by
                                  default: ~3 significant digits, |g| < 6e-8 flushes to 0)
member_grads dtype [N, M, L, 4, K]  every member's gradients (return_all)
aggregate    float32 [N, K]       the statistic's mean over members (the aggregate by default)
chrom, name, strand               per region (chrom as in the BED); strand + where absent
start, end   int64 [N]            the window (end - start = L; may pass chromosome ends)
identifiers  bytes [K]            the selected tracks (on + strand)
track_index  int64 [N, K]         the track aggregated per region (its pair on - with tss),
                                  as its row in the model's sheet
bin_window   int64 [N, 2]         the aggregate's bins [b0, b1) per region
attrs: reduce, rc, shifts, members, models, tss, seq_length, target_length, pool_width,
       crop_bp, skipped (regions off the genome), dtype, mc_n, seed, statistic, untransform,
       pseudo"""

ISM_LAYOUT = """\
seqs         uint8 [N, W, 4]      one-hot reference of the mutated window
sum, centre, logfc  float32 [N, W, 4, K]   ISM statistics (module docstring), 0 at the reference
ref_sum, ref float32 [N, K]       S and A of the reference (mean over members)
chrom, name, strand               per region (chrom as in the BED)
start, end   int64 [N]            the mutated window (end - start = W)
seq_start    int64 [N]            the model's input window (L bp)
identifiers, track_index, bin_window, attrs: as for gradients, plus pseudo and width"""


def _regions(bed: str, sizes: dict[str, int], aliases, missing: str) -> tuple[pd.DataFrame, int]:
    """The BED's regions on the genome and how many others were skipped."""
    if missing not in MISSING:
        raise SeqnnError(f"missing {missing!r} is not one of {', '.join(MISSING)}")
    raw = read_bed(bed, REGION_COLUMNS)
    regions = place_regions(raw, sizes, aliases, bed)
    skipped = len(raw) - len(regions)
    if skipped and missing == "error":
        absent = sorted(set(raw.chrom) - set(regions.bed_chrom))
        raise SeqnnError(f"{bed}: {skipped} region(s) on chromosome(s) absent from the FASTA "
                         f"({', '.join(absent[:5])}); fix the BED or skip them (missing=skip)")
    return regions, skipped


@dataclass
class _Setup:
    """What `gradient_maps` and `ism` share: models, regions, windows and aggregate."""

    ens: Ensemble
    interp: Interpreter
    regions: pd.DataFrame
    sizes: dict
    skipped: int
    starts: np.ndarray
    selected: np.ndarray
    windows: np.ndarray
    agg: Aggregate
    attrs: dict


def _setup(models, fasta, bed, *, fai, tracks, window, reduce, rc, shifts, batch_size, tss, head,
           aliases, missing, threads, mc_n=0, seed=0, statistic="aggregate", untransform=False,
           pseudo=1.0, denominator=None, layer=None) -> _Setup:
    """Models, regions, windows and aggregate of a run.

    Args:
        as `gradient_maps` (layer: as `seqnn.apply.hidden.layer_maps`).
    """

    set_threads(threads)
    sizes = chrom_sizes(fasta, fai)
    regions, skipped = _regions(bed, sizes, aliases, missing)
    ens = load_ensemble(models, head, tracks=tracks, partners=rc or tss)  # cut to the tracks
    stat = Statistic(statistic, pseudo, untransform_params(ens.tracks) if untransform else None)
    interp = Interpreter(ens.models, rc=rc, shifts=shifts, strand_pair=ens.strand_pair,
                         batch_size=batch_size, mc_n=mc_n, seed=seed, statistic=stat,
                         layer=layer)
    length, n = ens.seq_length, len(regions)
    centre = (np.where(regions.strand == "-", regions.end - 1, regions.start) if tss
              else (regions.start + regions.end) // 2)
    starts = np.asarray(centre, np.int64) - length // 2
    selected = np.arange(len(ens.identifiers) if ens.asked is None else ens.asked)
    per_track = selected
    if tss:
        per_track = strand_tracks(selected, regions.strand.to_numpy(), ens.strand_pair)
        if window is None or np.ndim(window) == 0:
            window = tss_windows(np.full(n, length // 2), ens.target_length, ens.pool_width,
                                 ens.crop_bp, None if window is None else int(window))
    agg = interp.aggregate(n, per_track, window, reduce, denominator)
    windows = bin_windows(n, ens.target_length, window)
    attrs = {"reduce": reduce, "rc": bool(rc), "shifts": json.dumps(list(interp.shifts)),
             "mc_n": mc_n, "seed": seed, "statistic": statistic, "untransform": untransform,
             "pseudo": pseudo,
             "members": interp.members, "models": json.dumps([str(path) for path in ens.paths]),
             "tss": bool(tss), "seq_length": length, "target_length": ens.target_length,
             "pool_width": ens.pool_width, "crop_bp": ens.crop_bp, "skipped": skipped}
    return _Setup(ens, interp, regions, sizes, skipped, starts, selected, windows, agg, attrs)


def _sheet_rows(ens: Ensemble) -> np.ndarray:
    """Each output track's row in the models' own sheet."""
    return np.arange(len(ens.tracks)) if ens.selected is None else np.array(ens.selected)


def _write_regions(f, run: _Setup, start: np.ndarray, end: np.ndarray) -> None:
    """The region table of `GRADIENT_LAYOUT` (windows from `start` to `end`) and attributes."""
    write_region_table(f, run.regions, start=start, end=end,
                       track_index=_sheet_rows(run.ens)[run.agg.tracks], bin_window=run.windows)
    f.create_dataset("strand", data=run.regions.strand.to_numpy().astype("S"))
    f.create_dataset("identifiers", data=np.array(run.ens.identifiers)[run.selected].astype("S"))
    f.attrs.update(run.attrs)


def _batches(fasta, fai, chroms, starts, length, batch_size,
             what: str) -> Iterator[tuple[slice, np.ndarray]]:
    """(rows, one-hot float32 [n, length, 4]) of windows, N past chromosome ends; a batch
    counts as done (`log.Progress` of `what`) when the next is asked for."""
    with open_fasta(fasta, fai) as fa, Progress(len(starts), what, "regions") as progress:
        for lo in range(0, len(starts), batch_size):
            rows = slice(lo, min(lo + batch_size, len(starts)))
            codes = [fetch_codes(fa, c, int(s), int(s) + length)
                     for c, s in zip(chroms[rows], starts[rows])]
            yield rows, one_hot(np.stack(codes))
            progress.update(rows.stop - rows.start)


def gradient_maps(models: Sequence[str], fasta: str, bed: str, out_h5: str, *,
                  fai: str | None = None, tracks=None, window=None, reduce: str = "sum",
                  rc: bool = True, shifts: Sequence[int] = (0,), batch_size: int = 8,
                  bigwig_dir: str | None = None, tss: bool = False, dtype: str = "float16",
                  head: int | None = None, aliases: dict[str, str] | None = None,
                  missing: str = "skip", threads: int | None = None, mc_n: int = 0,
                  seed: int = 0, return_all: bool = False, statistic: str = "aggregate",
                  untransform: bool = False, pseudo: float = 1.0, denominator=None) -> dict:
    """Gradient maps of the BED regions' windows into HDF5 `out_h5` (`GRADIENT_LAYOUT`), and
    with `bigwig_dir` one contribution-score bigWig per selected track ({identifier}.bw).

    Args:
        models: model files of one geometry (e.g. the fold models), averaged.
        fasta, fai: the genome (and its index).
        bed: the regions; out_h5: the file written.
        tracks: identifiers, indices or description regexes of the tracks explained (None:
            all); the head is cut to them (and their strand partners, with rc or tss).
        window: the aggregate's bins as `attribution.bin_windows` (a width, (b0, b1) or
            ``center``; with `tss`, a width around the TSS bin).
        reduce: ``sum`` or ``mean`` over the window's bins.
        rc, shifts: augmentations averaged over (module docstring of `seqnn.apply.interpreter`).
        batch_size: windows per batch.
        bigwig_dir: where contribution bigWigs go (None: none written).
        tss: centre on TSSs and aggregate each gene's strand's track.
        dtype: of the stored gradients.
        head: the output of multi-head models.
        aliases: FASTA chromosome name -> the BED's (and the bigWigs').
        missing: ``skip`` (counted) or ``error`` for regions off the genome.
        threads: CPU threads of TensorFlow (None: its default).
        mc_n, seed: Monte-Carlo dropout passes per augmentation (0: none) and their seed.
        return_all: also store every member's gradients (``member_grads``).
        statistic, untransform, pseudo, denominator: what is differentiated
            (`attribution.Statistic`: ``aggregate``, ``log`` or ``ratio`` of the aggregate,
            optionally of untransformed predictions; `denominator`: the ratio's window).

    Returns:
        A summary (regions, skipped, tracks, members, seconds, maps_per_s).
    """
    run = _setup(models, fasta, bed, fai=fai, tracks=tracks, window=window, reduce=reduce, rc=rc,
               shifts=shifts, batch_size=batch_size, tss=tss, head=head, aliases=aliases,
               missing=missing, threads=threads, mc_n=mc_n, seed=seed, statistic=statistic,
               untransform=untransform, pseudo=pseudo, denominator=denominator)
    n, length, k = len(run.regions), run.ens.seq_length, len(run.selected)
    tic = time.perf_counter()
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        _write_regions(f, run, run.starts, run.starts + length)
        f.attrs["dtype"] = np.dtype(dtype).name
        seqs = f.create_dataset("seqs", (n, length, 4), np.uint8, chunks=(1, length, 4))
        grads = f.create_dataset("grads", (n, length, 4, k), dtype, chunks=(1, length, 4, k))
        values = f.create_dataset("aggregate", (n, k), np.float32)
        every = MemberWriter(f, "member_grads", n, run.interp.members, (length, 4, k),
                             np.dtype(dtype).name) if return_all else None
        for rows, x in _batches(fasta, fai, run.regions.chrom.to_numpy(), run.starts, length,
                                batch_size, "gradients"):
            if every:
                members = list(run.interp.member_gradients(x, run.agg[rows]))
                every.write(rows, [g for g, _ in members])
                g, a = (np.mean(part, axis=0) for part in zip(*members))
            else:
                g, a = run.interp.gradients(x, run.agg[rows])
            seqs[rows], grads[rows], values[rows] = x.astype(np.uint8), g.astype(dtype), a
        seconds = time.perf_counter() - tic
        if bigwig_dir:
            names = [aliases.get(c, c) if aliases else c for c in run.regions.chrom]
            write_contribution_bigwigs(f, bigwig_dir, {c: (aliases or {}).get(c, c)
                                                       for c in run.sizes}, run.sizes, names)
    ids = [str(t) for t in np.array(run.ens.identifiers)[run.selected]]
    log.info("%s: gradients of %d regions x %d tracks (%d members) in %.1f s; %d skipped",
             out_h5, n, k, run.interp.members, seconds, run.skipped)
    return {"regions": n, "skipped": run.skipped, "tracks": ids, "members": run.interp.members,
            "seconds": round(seconds, 2), "maps_per_s": round(n * k / max(seconds, 1e-9), 2)}


def write_contribution_bigwigs(f, out_dir: str, names: dict[str, str], sizes: dict[str, int],
                               chroms: Sequence[str] | None = None) -> list[str]:
    """Contribution-score bigWigs {identifier}.bw in `out_dir` from a gradients HDF5 `f` (a path
    or an open file): per base, input x centred gradient, from the window whose centre is
    nearest (module docstring). `sizes`: FASTA chromosome sizes in order; `names`: FASTA name ->
    bigWig name; `chroms`: each region's bigWig chromosome (default: the file's `chrom`)."""
    if not isinstance(f, h5py.File):
        with h5py.File(f, "r") as opened:
            return write_contribution_bigwigs(opened, out_dir, names, sizes, chroms)

    ids = [i.decode() for i in f["identifiers"][:]]
    chroms = np.asarray(f["chrom"][:].astype(str) if chroms is None else chroms)
    starts, length = f["start"][:], f["seqs"].shape[1]
    size_of = {names[c]: n for c, n in sizes.items()}
    rank = {names[c]: i for i, c in enumerate(sizes)}
    order = np.lexsort((np.arange(len(starts)), starts, [rank[c] for c in chroms]))
    paths = [os.path.join(out_dir, f"{i}.bw") for i in ids]
    with ExitStack() as stack:
        bws = []
        for path in paths:
            bw = pyBigWig.open(stack.enter_context(atomic_path(path)), "w")
            stack.callback(bw.close)  # closed before its rename (callbacks run first)
            bw.addHeader([(names[c], n) for c, n in sizes.items()], maxZooms=10)
            bws.append(bw)
        for chrom in pd.unique(chroms[order]):
            rows = order[chroms[order] == chrom]
            s = starts[rows]
            keep = np.concatenate([[True], s[1:] != s[:-1]])  # identical windows: the first
            rows, s = rows[keep], s[keep]
            # base p is nearer window i's centre than window i+1's iff p < hi_i
            hi = np.concatenate([(s[:-1] + s[1:] + length - 1) // 2 + 1, [s[-1] + length]])
            lo = np.concatenate([[s[0]], hi[:-1]])
            lo, hi = np.maximum(np.maximum(lo, s), 0), np.minimum(np.minimum(hi, s + length),
                                                                  size_of[chrom])
            for row, start, a, b in zip(rows, s, lo, hi):
                if b <= a:
                    continue
                x, g = f["seqs"][row], f["grads"][row].astype(np.float32)
                contrib = input_x_gradient(x[None], g[None])[0].astype(np.float64)  # [L, K]
                for bw, values in zip(bws, contrib[a - start : b - start].T):
                    bw.addEntries(chrom, int(a), values=np.ascontiguousarray(values), span=1,
                                  step=1)
    log.info("%s: contribution bigWigs of %s", out_dir, ", ".join(ids))
    return paths


def ism(models: Sequence[str], fasta: str, bed: str, out_h5: str, *, window_bp: int = ISM_WIDTH,
        fai: str | None = None, tracks=None, window=None, reduce: str = "sum",
        pseudo: float = 1.0, rc: bool = True, shifts: Sequence[int] = (0,), batch_size: int = 32,
        tss: bool = False, head: int | None = None, aliases: dict[str, str] | None = None,
        missing: str = "skip", threads: int | None = None) -> dict:
    """Saturation mutagenesis of the centre `window_bp` of each BED region's window (its TSS with
    `tss`) into HDF5 `out_h5` (`ISM_LAYOUT`).

    Args:
        window_bp: the bp mutated, centred in each window.
        pseudo: the pseudocount of ``logfc``.
        others: as `gradient_maps`.

    Returns:
        A summary (regions, skipped, tracks, members, substitutions, seconds,
        substitutions_per_s).
    """
    run = _setup(models, fasta, bed, fai=fai, tracks=tracks, window=window, reduce=reduce, rc=rc,
               shifts=shifts, batch_size=batch_size, tss=tss, head=head, aliases=aliases,
               missing=missing, threads=threads)
    n, length, k = len(run.regions), run.ens.seq_length, len(run.selected)
    if not 1 <= window_bp <= length:
        raise SeqnnError(f"ISM width {window_bp} bp does not fit the models' {length} bp "
                         f"windows; give --ism-width (interpret.ism_width) 1..{length}")
    offset = (length - window_bp) // 2
    tic, subs = time.perf_counter(), 0
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        _write_regions(f, run, run.starts + offset, run.starts + offset + window_bp)
        f.create_dataset("seq_start", data=run.starts)
        f.attrs.update({"pseudo": pseudo, "width": window_bp})
        seqs = f.create_dataset("seqs", (n, window_bp, 4), np.uint8)
        stats = {key: f.create_dataset(key, (n, window_bp, 4, k), np.float32)
                 for key in ISM_STATS}
        refs = {key: f.create_dataset(key, (n, k), np.float32) for key in ("ref", "ref_sum")}
        for rows, x in _batches(fasta, fai, run.regions.chrom.to_numpy(), run.starts, length,
                                batch_size, "ism"):
            out = run.interp.ism(x, run.agg[rows], offset, window_bp, pseudo)
            ref = x[:, offset : offset + window_bp]
            seqs[rows] = ref.astype(np.uint8)
            subs += int((ref == 0).sum())
            for key, ds in {**stats, **refs}.items():
                ds[rows] = out[key]
    seconds = time.perf_counter() - tic
    ids = [str(t) for t in np.array(run.ens.identifiers)[run.selected]]
    log.info("%s: ISM of %d regions x %d bp, %d substitutions x %d members in %.1f s; "
             "%d skipped", out_h5, n, window_bp, subs, run.interp.members, seconds, run.skipped)
    return {"regions": n, "skipped": run.skipped, "tracks": ids, "members": run.interp.members,
            "substitutions": subs, "seconds": round(seconds, 2),
            "substitutions_per_s": round(subs / max(seconds, 1e-9), 2)}
