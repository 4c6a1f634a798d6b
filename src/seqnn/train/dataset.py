"""tf.data pipelines over Basenji-format data directories (statistics.json + tfrecords/).

Reads this workflow's shards (`fold{k}-{i}.tfr`) and Basenji / baskerville ones
(`train|valid|test-{i}.tfr`) alike; sequences stored as codes [L] or one-hot [L, 4] are both
recognised, by their size.
"""

from __future__ import annotations

import os

import tensorflow as tf

from seqnn import SeqnnError
from seqnn.data.records import read_statistics, split_files

FEATURES = {
    "sequence": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string),
}


def steady(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` without tf.data autotuning: fixed parallelism instead.

    An autotuned iterator's destructor waits for the tuning thread's next wake-up, which
    stalled every Keras epoch (training and validation iterators alike) for up to ~5 s on
    2 cores; parsing is cheap, so tuning buys nothing here.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def count_records(data_dir: str, label: str, stats: dict) -> int:
    """Sequences of a split: from statistics.json (`stats`), or counted in its shards."""
    if f"{label}_seqs" in stats:
        return int(stats[f"{label}_seqs"])
    records = tf.data.TFRecordDataset(split_files(data_dir, label), compression_type="ZLIB")
    return int(records.reduce(0, lambda n, _: n + 1))


def _parser(stats: dict, one_hot_stored: bool):
    seq_length, num_targets = stats["seq_length"], stats["num_targets"]
    target_length = stats["target_length"]

    def parse(record):
        features = tf.io.parse_single_example(record, FEATURES)
        seq = tf.io.decode_raw(features["sequence"], tf.uint8)
        if one_hot_stored:
            seq = tf.cast(tf.reshape(seq, [seq_length, 4]), tf.float32)
        else:
            seq = tf.one_hot(tf.reshape(seq, [seq_length]), 4, dtype=tf.float32)  # N (4) -> 0
        target = tf.io.decode_raw(features["target"], tf.float16)
        target = tf.cast(tf.reshape(target, [target_length, num_targets]), tf.float32)
        return seq, target

    return parse


def _stores_one_hot(path: str, seq_length: int) -> bool:
    record = next(iter(tf.data.TFRecordDataset(path, compression_type="ZLIB")))
    size = len(tf.io.parse_single_example(record, FEATURES)["sequence"].numpy())
    if size not in (seq_length, 4 * seq_length):
        raise SeqnnError(f"{path}: sequence of {size} bytes fits neither seq_length {seq_length} "
                         "codes nor its one-hot; check statistics.json")
    return size == 4 * seq_length


def dataset(
    data_dir: str,
    label: str | list[str],
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    shuffle_buffer: int = 1024,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (one-hot float32 [B, L, 4], targets float32 [B, target_length, T]).

    Without `shuffle` the order is that of the shards and records (deterministic); with it,
    shards are interleaved and records shuffled with `seed`.
    """
    stats = read_statistics(data_dir)
    labels = [label] if isinstance(label, str) else list(label)
    files = [f for lab in labels for f in split_files(data_dir, lab)]
    parse = _parser(stats, _stores_one_hot(files[0], stats["seq_length"]))
    if shuffle:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed)
        ds = ds.interleave(
            lambda f: tf.data.TFRecordDataset(f, compression_type="ZLIB"),
            cycle_length=min(4, len(files)), num_parallel_calls=min(4, len(files)),
            deterministic=seed is not None,
        )
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        ds = tf.data.TFRecordDataset(files, compression_type="ZLIB")
    ds = ds.map(parse, num_parallel_calls=os.cpu_count() or 1, deterministic=not shuffle or
                seed is not None)
    if repeat:
        ds = ds.repeat()
    return steady(ds.batch(batch_size).prefetch(2))
