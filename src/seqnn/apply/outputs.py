"""What prediction and evaluation outputs keep (Keras-free): the output dtype (downcast), the
bins kept (every k-th or a seeded sample), every member's output streamed to HDF5, and the
files of an evaluation (predictions.h5, examples.h5: `seqnn.apply.evaluate`).

Downcast. ``float16`` halves the file; it holds |x| <= 65,504 (`F16_MAX`) with ~3 significant
digits, so an untransformed coverage prediction can overflow to inf (Basenji issue #196):
`downcast` stops with a message instead. ``bfloat16`` holds float32's range with ~2-3 digits;
HDF5 has no bfloat16 type, so its values are rounded to bfloat16 and stored as float32.

Positions. ``step`` k keeps bins 0, k, 2k, ... (Basenji's `step`, `down_sample`); ``sample`` n
keeps n bins drawn uniformly without replacement (sorted) by a seeded generator, the same bins
for every window; the kept bins are written beside the values (``bins``).
"""

from __future__ import annotations

import h5py
import numpy as np

from seqnn import SeqnnError
from seqnn.io import atomic_path

DTYPES = ("float32", "float16", "bfloat16")
F16_MAX = float(np.finfo(np.float16).max)  # 65,504


def stored_dtype(dtype: str) -> np.dtype:
    """The HDF5 dtype of outputs in `dtype` (bfloat16: float32, see the module docstring)."""
    if dtype not in DTYPES:
        raise SeqnnError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return np.dtype(np.float16 if dtype == "float16" else np.float32)


def round_bfloat16(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even; the top 16 bits)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return np.where(np.isfinite(values), rounded.view(np.float32), values)


def downcast(values: np.ndarray, dtype: str, what: str = "predictions") -> np.ndarray:
    """`values` rounded to `dtype`, in its stored dtype; float16 overflow is an error."""
    stored = stored_dtype(dtype)
    values = np.asarray(values, np.float32)
    if dtype == "bfloat16":
        return round_bfloat16(values)
    if dtype == "float16":
        big = np.abs(values[np.isfinite(values)], dtype=np.float32)
        top = float(big.max()) if big.size else 0.0
        if top > F16_MAX:
            raise SeqnnError(f"{what}: a value of {top:.4g} exceeds float16's largest, 65,504, "
                             "and would be written as inf; use dtype bfloat16 or float32, or "
                             "write transformed (model-unit) values")
    return values.astype(stored)


def positions(target_length: int, step: int = 1, sample: int | None = None,
              seed: int = 0) -> np.ndarray:
    """The bins kept of `target_length` (module docstring): every `step`-th, or `sample` of
    them drawn with `seed`."""
    if step < 1:
        raise SeqnnError(f"step {step}: give a positive step (1 keeps every bin)")
    if sample is None:
        return np.arange(0, target_length, step)
    if step != 1:
        raise SeqnnError("step and sample: give one of them (a step, or a sample of bins)")
    if not 1 <= sample <= target_length:
        raise SeqnnError(f"sample {sample}: need 1..{target_length} bins (the model's); lower "
                         "the sample")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(target_length, sample, replace=False))


class MemberWriter:
    """Every member's output of a stream of batches into HDF5 dataset `name`
    [N, members, *shape], one batch at a time (bounded memory), in `dtype`."""

    def __init__(self, h5, name: str, n: int, members: int, shape: tuple, dtype: str):
        self.dtype = dtype
        self.ds = h5.create_dataset(name, (n, members, *shape), stored_dtype(dtype),
                                    chunks=(1, 1, *shape))
        self.ds.attrs["dtype"] = dtype

    def write(self, rows: slice, members: list[np.ndarray]) -> None:
        """Write members [b, *shape] (one per member, in order) of sequences `rows`."""
        if len(members) != self.ds.shape[1]:
            raise SeqnnError(f"{self.ds.name}: {len(members)} members for "
                             f"{self.ds.shape[1]}; report this bug")
        self.ds[rows] = downcast(np.stack(members, 1), self.dtype, self.ds.name)


class PredictionFile:
    """predictions.h5 of an evaluation, appended batch by batch: ``pred`` and ``target``
    [seqs, B, tracks] (pred in `dtype`, target float16) of the B bins kept (``bins``), with
    `return_all` every member ``members`` [seqs, M, B, tracks], then chrom, start and end.

    Args:
        path: the file written.
        bins, tracks: the windows' shape.
        members: M, the members per sequence.
        dtype: of pred and members (`downcast`).
        step, sample, seed: the bins kept (`positions`).
        return_all: also write every member.
    """

    def __init__(self, path, bins: int, tracks: int, members: int, *, dtype: str = "float32",
                 step: int = 1, sample: int | None = None, seed: int = 0,
                 return_all: bool = False):
        self.keep, self.dtype, self.n = positions(bins, step, sample, seed), dtype, 0
        self.h5 = h5py.File(path, "w")
        shape = (len(self.keep), tracks)
        for name, kind in (("pred", stored_dtype(dtype)), ("target", np.float16)):
            self.h5.create_dataset(name, (0, *shape), kind, compression="gzip",
                                   maxshape=(None, *shape), chunks=(1, *shape))
        if return_all:
            self.h5.create_dataset("members", (0, members, *shape), stored_dtype(dtype),
                                   maxshape=(None, members, *shape), chunks=(1, 1, *shape))
        self.h5.create_dataset("bins", data=self.keep.astype(np.int64))
        self.h5.attrs["dtype"] = dtype

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.h5.close()

    def append(self, pred: np.ndarray, target: np.ndarray, members=None) -> None:
        """One batch: pred, target [b, bins, tracks] and (return_all) its members."""
        rows = slice(self.n, self.n + len(pred))
        self.n += len(pred)
        values = {"pred": pred, "target": target}
        if members is not None:
            values["members"] = np.stack(members, 1)
        for name, value in values.items():
            ds = self.h5[name]
            ds.resize(self.n, axis=0)
            value = value[..., self.keep, :]
            ds[rows] = value if name == "target" else downcast(value, self.dtype, ds.name)

    def coordinates(self, windows) -> None:
        """Each sequence's chrom, start and end (sequences.bed's rows of the split)."""
        for col in ("chrom", "start", "end"):
            self.h5[col] = windows[col].to_numpy(dtype="S" if col == "chrom" else np.int64)


def write_examples(path, acc, sample, loci, windows, pool_width, crop_bp, meta):
    """examples.h5: the sampled bins and the example windows (`seqnn.apply.evaluate`)."""
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
