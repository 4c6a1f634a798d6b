"""TFRecords written here read back with TensorFlow's own parser; Basenji directories load."""

import json

import numpy as np
import pandas as pd
import pytest

from seqnn.data import dna, records

tf = pytest.importorskip("tensorflow")
from seqnn.train import dataset as data  # noqa: E402


def test_example_bytes_equal_tensorflow_serialization():
    feats = {"sequence": bytes(range(50)), "target": np.arange(6, dtype=np.float16).tobytes()}
    ours = records.example(feats)
    theirs = tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v])) for k, v in feats.items()
    }))
    parsed = tf.train.Example.FromString(ours)
    assert parsed == theirs
    assert ours == theirs.SerializeToString(deterministic=True)


def _write_fold_dir(tmp_path, n=7, seq_length=64, target_length=8, tracks=3, per_shard=3):
    rng = np.random.default_rng(0)
    fasta = tmp_path / "g.fa"
    genome_seq = "".join(rng.choice(list("ACGTN"), 1000))
    fasta.write_text(f">c\n{genome_seq}\n")
    starts = np.arange(n) * 100
    seqs = pd.DataFrame({"chrom": "c", "start": starts, "end": starts + seq_length,
                         "label": ["fold0"] * 3 + ["fold1"] * (n - 3)})
    targets = rng.gamma(1, 3, (n, target_length, tracks)).astype(np.float16)
    from seqnn.data.coverage import write_targets
    cov = []
    for t in range(tracks):
        cov.append(str(tmp_path / f"t{t}.h5"))
        write_targets(cov[-1], targets[:, :, t], {})
    out = tmp_path / "data"
    paths = records.write_split(str(fasta), None, seqs, cov, str(out / "tfrecords"), "fold1",
                                per_shard, index=str(out / "tfrecords" / "fold1.json"))
    stats = records.statistics(seqs, ["fold0", "fold1"], tracks, seq_length // target_length, 0)
    records.write_json(stats, str(out / "statistics.json"))
    return out, paths, seqs, targets, genome_seq


def test_write_split_shards_and_reader(tmp_path):
    out, paths, seqs, targets, genome_seq = _write_fold_dir(tmp_path)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["fold1-0.tfr", "fold1-1.tfr"]
    index = json.loads((out / "tfrecords" / "fold1.json").read_text())
    assert index == {"label": "fold1", "sequences": 4, "shards": {"fold1-0.tfr": 3,
                                                                  "fold1-1.tfr": 1}}
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in data.dataset(str(out), "fold1", 2)])
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (4, 64, 4) and y.shape == (4, 8, 3) and x.dtype == np.float32
    for i, row in enumerate(seqs.iloc[3:].itertuples()):
        np.testing.assert_array_equal(x[i], dna.one_hot(dna.encode(genome_seq[row.start:row.end])))
    np.testing.assert_array_equal(y, targets[3:].astype(np.float32))
    assert (x.sum(-1) == 0).any()  # N bases are all-zero rows


def test_shuffled_reader_is_seeded(tmp_path):
    out, *_ = _write_fold_dir(tmp_path, n=20, per_shard=4)

    def order(seed):
        ds = data.dataset(str(out), "fold1", 1, shuffle=True, seed=seed, shuffle_buffer=8)
        return [float(y.numpy().sum()) for _, y in ds]

    assert order(1) == order(1)
    assert sorted(order(1)) == sorted(order(2))


def test_basenji_directory_with_one_hot_sequences(tmp_path):
    """A baskerville-style dir: train/valid/test names, one-hot uint8 sequences, TF's writer."""
    rng = np.random.default_rng(2)
    (tmp_path / "tfrecords").mkdir()
    seq_1hot = dna.one_hot(rng.integers(0, 5, (5, 32)).astype(np.uint8), dtype=np.uint8)
    targets = rng.random((5, 4, 2)).astype(np.float16)
    options = tf.io.TFRecordOptions(compression_type="ZLIB")
    for name, rows in (("train-0", [0, 1]), ("train-1", [2]), ("valid-0", [3, 4])):
        with tf.io.TFRecordWriter(str(tmp_path / "tfrecords" / f"{name}.tfr"), options) as w:
            for i in rows:
                feats = {"sequence": seq_1hot[i].tobytes(), "target": targets[i].tobytes()}
                ex = tf.train.Example(features=tf.train.Features(feature={
                    k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
                    for k, v in feats.items()}))
                w.write(ex.SerializeToString())
    stats = {"num_targets": 2, "seq_length": 32, "seq_1hot": True, "pool_width": 8,
             "crop_bp": 0, "target_length": 4, "train_seqs": 3, "valid_seqs": 2}
    (tmp_path / "statistics.json").write_text(json.dumps(stats))
    x, y = next(iter(data.dataset(str(tmp_path), "train", 3)))
    np.testing.assert_array_equal(x.numpy(), seq_1hot[:3].astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), targets[:3].astype(np.float32))
    with pytest.raises(Exception, match="no test-\\*.tfr shard"):
        data.dataset(str(tmp_path), "test", 1)
