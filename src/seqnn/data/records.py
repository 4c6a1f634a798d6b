"""Basenji-format TFRecords and statistics.json, written without importing TensorFlow.

Each record is a ZLIB-compressed `tf.train.Example` with two bytes features:
`sequence` (uint8 codes [seq_length], A,C,G,T,N = 0..4) and `target` (float16
[target_length, num_targets], row-major). The Example protobuf and the TFRecord framing
(length, masked CRC32C, data, masked CRC32C) are encoded here directly: the data stage then
runs in light processes, and tests check the files with TensorFlow's own reader.
"""

from __future__ import annotations

import glob
import json
import os
import re
import struct
import tempfile
import zlib

import google_crc32c
import numpy as np
import pandas as pd

from seqnn import SeqnnError
from seqnn.data.coverage import read_targets
from seqnn.data.fasta import fetch_codes, open_fasta
from seqnn.io import atomic_path

ZLIB_LEVEL = 6  # TensorFlow's default for ZLIB records


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def example(features: dict[str, bytes]) -> bytes:
    """Serialized tf.train.Example of bytes features (keys in sorted order)."""
    entries = b"".join(
        _field(1, _field(1, key.encode()) + _field(2, _field(1, _field(1, value))))
        for key, value in sorted(features.items())
    )
    return _field(1, entries)


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """A record in TFRecord framing."""
    length = struct.pack("<Q", len(record))
    return (length + struct.pack("<I", _masked_crc(length)) + record
            + struct.pack("<I", _masked_crc(record)))


def write_tfrecord(path: str, records) -> int:
    """Write records (bytes) to a ZLIB-compressed TFRecord file atomically; return the count."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        z = zlib.compressobj(ZLIB_LEVEL)
        for record in records:
            f.write(z.compress(frame(record)))
            n += 1
        f.write(z.flush())
    return n


def write_split(
    fasta: str,
    fai: str | None,
    seqs: pd.DataFrame,
    coverage_files: list[str],
    out_dir: str,
    label: str,
    seqs_per_tfr: int,
    index: str | None = None,
) -> list[str]:
    """Write the sequences of one split label to shards `{label}-{i}.tfr` in out_dir.

    `seqs` is the whole sequences.bed; its rows with `label` must be contiguous (they are, as
    sequences.bed is grouped by label). Shards are written in a temporary folder and moved in
    place together, replacing old shards of the label; `index` (JSON) lists them last.
    """
    rows = np.flatnonzero(seqs.label.to_numpy() == label)
    if len(rows) == 0:
        raise SeqnnError(f"{label} has no sequence in sequences.bed; use fewer folds or shorter "
                         "seq_length / break_length")
    if rows[-1] - rows[0] + 1 != len(rows):
        raise SeqnnError(f"sequences.bed: the {label} rows are not contiguous; regenerate it")
    shards = {}
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{label}.tmp-", dir=out_dir) as tmp_dir, \
            open_fasta(fasta, fai) as fa:
        for i, lo in enumerate(range(rows[0], rows[-1] + 1, seqs_per_tfr)):
            hi = min(lo + seqs_per_tfr, rows[-1] + 1)
            targets = np.stack([read_targets(f, slice(lo, hi)) for f in coverage_files], axis=-1)
            name = f"{label}-{i}.tfr"
            shards[name] = write_tfrecord(
                os.path.join(tmp_dir, name), _examples(fa, seqs.iloc[lo:hi], targets)
            )
        for old in glob.glob(os.path.join(out_dir, f"{label}-*.tfr")):
            os.remove(old)
        for name in shards:
            os.replace(os.path.join(tmp_dir, name), os.path.join(out_dir, name))
    if index:
        write_json({"label": label, "sequences": int(len(rows)), "shards": shards}, index)
    return [os.path.join(out_dir, name) for name in shards]


def _examples(fa, seqs: pd.DataFrame, targets: np.ndarray):
    """Serialized Examples of the sequences in `seqs` with their targets [n, length, tracks]."""
    for (chrom, start, end), target in zip(
        seqs[["chrom", "start", "end"]].itertuples(index=False), targets, strict=True
    ):
        yield example({
            "sequence": fetch_codes(fa, chrom, start, end).tobytes(),
            "target": np.ascontiguousarray(target, dtype=np.float16).tobytes(),
        })


def statistics(seqs: pd.DataFrame, labels: list[str], num_targets: int, pool_width: int,
               crop_bp: int) -> dict:
    """statistics.json content (Basenji keys, plus `{label}_seqs` per split)."""
    seq_length = int((seqs.end - seqs.start).iloc[0])
    counts = seqs.label.value_counts()
    stats = {
        "num_targets": num_targets,
        "seq_length": seq_length,
        "seq_depth": 4,
        "seq_1hot": True,
        "pool_width": pool_width,
        "crop_bp": crop_bp,
        "target_length": (seq_length - 2 * crop_bp) // pool_width,
    }
    stats.update({f"{label}_seqs": int(counts.get(label, 0)) for label in labels})
    return stats


def write_json(obj: dict, path: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def read_statistics(data_dir: str) -> dict:
    path = os.path.join(data_dir, "statistics.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SeqnnError(f"{path}: missing or unreadable ({e}); point at a data directory made "
                         "by the data stage or by Basenji") from e


def split_files(data_dir: str, label: str) -> list[str]:
    """The TFRecord shards of a split label (`{label}-{i}.tfr`), in shard order."""
    pattern = re.compile(rf"{re.escape(label)}-(\d+)\.tfr$")
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(data_dir, "tfrecords", "*.tfr"))
             if (m := pattern.search(os.path.basename(p)))]
    if not found:
        raise SeqnnError(f"{data_dir}/tfrecords: no {label}-*.tfr shard; check the split name "
                         "(fold{k}, or train/valid/test)")
    return [p for _, p in sorted(found)]
