"""Predictions of whole windows centred on BED regions, one row per window (Basenji's
`predict` of a set of sequences): the members' mean (and variance), every member with
`return_all`, Monte-Carlo dropout passes, the bins kept (`step`, `sample`) and the output dtype
(`seqnn.apply.outputs`).

Layout of the HDF5 file (N windows, M members, B bins kept, K tracks):

    pred       [N, B, K]     mean over members (dtype; bfloat16 stored as float32)
    variance   [N, B, K]     population variance over members (with variance)
    members    [N, M, B, K]  every member: model-major, then shift, strand, pass (return_all)
    bins       int64 [B]     the window's bins kept
    chrom, name, start, end  the BED regions; window_start int64 [N]
    attrs: models, members, rc, shifts, mc_n, seed, untransformed, dtype, identifiers,
           pool_width, crop_bp, seq_length
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import h5py
import numpy as np

from seqnn.apply.dropout import mc_models
from seqnn.apply.ensemble import MemberMoments, compiled_inference, load_ensemble
from seqnn.apply.gather import write_region_table
from seqnn.apply.outputs import MemberWriter, downcast, positions, stored_dtype
from seqnn.apply.predict import one_hot_batches
from seqnn.data.bed import read_regions
from seqnn.data.coverage import track_untransform
from seqnn.data.fasta import chrom_sizes
from seqnn.io import atomic_path
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")


def window_members(ens, *, rc=False, shifts=(0,), mc_n=0, seed=0, untransform=True,
                   variance=False, batch_size=32) -> MemberMoments:
    """The members of ensemble `ens` (models x shifts x strands x Monte-Carlo passes) as one
    `MemberMoments`, each model compiled once."""
    models, passes = mc_models(ens.models, mc_n, seed, ens.paths)
    calls = [compiled_inference(m, ens.seq_length, batch_size) for m in models]
    scale = track_untransform(ens.tracks, ens.pool_width) if untransform else None
    return MemberMoments(calls, rc, shifts, ens.strand_pair, scale, variance, passes)


def predict_windows(models: Sequence[str], fasta: str, bed: str, out: str, *,
                    fai: str | None = None, rc: bool = False, shifts: Sequence[int] = (0,),
                    mc_n: int = 0, seed: int = 0, untransform: bool = True,
                    variance: bool = False, return_all: bool = False, dtype: str = "float32",
                    step: int = 1, sample: int | None = None, batch_size: int = 32,
                    head: int | None = None, tracks=None, sum_tracks: bool = False,
                    aliases: dict[str, str] | None = None, threads: int | None = None) -> dict:
    """Predict the seq_length windows centred on each BED region into HDF5 `out` (module
    docstring).

    Args:
        models: model files, averaged.
        fasta, fai: the genome (and its index); bed: the regions.
        rc, shifts: test-time augmentations averaged over.
        mc_n, seed: Monte-Carlo dropout passes per augmentation (0: none) and their seed.
        untransform: members in the input track's units per base (as `predict`).
        variance: also the members' variance; return_all: also every member.
        dtype: float32, float16 or bfloat16 (`outputs.downcast`).
        step, sample: the bins kept (`outputs.positions`; `seed` draws the sample).
        batch_size: windows per batch; head, tracks, sum_tracks: as `predict`.
        aliases: FASTA chromosome name -> the BED's; threads: TensorFlow CPU threads.

    Returns:
        A summary (windows, members, bins, tracks, dtype).
    """
    set_threads(threads)
    stored = stored_dtype(dtype)
    ens = load_ensemble(models, head, tracks=tracks, sum_tracks=sum_tracks, partners=rc)
    moments = window_members(ens, rc=rc, shifts=shifts, mc_n=mc_n, seed=seed,
                             untransform=untransform, variance=variance, batch_size=batch_size)
    keep = positions(ens.target_length, step, sample, seed)
    regions = read_regions(bed, chrom_sizes(fasta, fai), aliases)
    n, length, k = len(regions), ens.seq_length, len(ens.tracks)
    starts = ((regions.start + regions.end) // 2 - length // 2).to_numpy()
    chroms = regions.chrom.to_numpy()
    batches = [(chroms[i : i + batch_size], starts[i : i + batch_size])
               for i in range(0, n, batch_size)]
    members = moments.per_model * len(ens.models)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        names = ["pred", "variance"] if variance else ["pred"]
        sets = [f.create_dataset(name, (n, len(keep), k), stored, chunks=(1, len(keep), k))
                for name in names]
        writer = MemberWriter(f, "members", n, members, (len(keep), k), dtype) \
            if return_all else None
        for lo, x in zip(range(0, n, batch_size), one_hot_batches(fasta, fai, batches, length)):
            rows = slice(lo, lo + len(x))
            every = list(moments.members(x)) if return_all else None
            stats = moments(x) if every is None else _moments(every, variance)
            for ds, value in zip(sets, stats):
                ds[rows] = downcast(value[:, keep], dtype, f"{out}: {ds.name}")
            if writer:
                writer.write(rows, [y[:, keep] for y in every])
        write_region_table(f, regions, window_start=starts)
        f.create_dataset("bins", data=keep.astype(np.int64))
        f.attrs.update({"models": json.dumps([str(p) for p in ens.paths]), "members": members,
                        "rc": bool(rc), "shifts": json.dumps(list(shifts)), "mc_n": mc_n,
                        "seed": seed, "untransformed": bool(untransform), "dtype": dtype,
                        "identifiers": json.dumps(ens.identifiers), "seq_length": length,
                        "pool_width": ens.pool_width, "crop_bp": ens.crop_bp})
    log.info("%s: %d windows x %d members, %d of %d bins x %d tracks (%s)", out, n, members,
             len(keep), ens.target_length, k, dtype)
    return {"windows": n, "members": members, "bins": len(keep), "tracks": ens.identifiers,
            "dtype": dtype}


def _moments(members: list[np.ndarray], variance: bool) -> list[np.ndarray]:
    """Mean (and population variance) of members held together."""
    stacked = np.stack(members)
    return [stacked.mean(0), *([stacked.var(0)] if variance else [])]
