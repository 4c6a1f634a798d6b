"""MirroredStrategy on 2 logical CPU devices trains like one device with the global batch."""

import json
import subprocess
import sys

from test_train import tiny_params, write_data

SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from seqnn.log import logged
from seqnn.train.loop import train
params, data, out, batch, devices = json.loads(sys.argv[1])
params["train"]["batch_size"] = batch
with logged():
    summary = train(params, data, out, seed=3, devices=devices)
print("SUMMARY", json.dumps(summary))
"""


def _run(params, data, out, batch, devices):
    arg = json.dumps([params, str(data), str(out), batch, devices])
    result = subprocess.run([sys.executable, "-c", SCRIPT, arg], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _history(out):
    lines = (out / "history.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, map(float, line.split("\t")))) for line in lines[1:]]


def test_two_replicas_match_one_device(tmp_path):
    data = write_data(tmp_path / "data")
    # no batch norm (per-replica statistics) and no augmentation (per-replica randomness)
    params = tiny_params(train_epochs_max=3, learning_rate=0.01)
    params["model"].update(augment_rc=False, augment_shift=0, norm_type=None)
    mirrored = _run(params, data, tmp_path / "two", 4, ["/cpu:0", "/cpu:1"])
    _run(params, data, tmp_path / "one", 8, None)
    assert "batch 8 on 2 replica(s)" in mirrored.stderr, mirrored.stderr[-2000:]
    two, one = _history(tmp_path / "two"), _history(tmp_path / "one")
    assert len(two) == len(one) == 3
    for a, b in zip(two, one):
        for key in ("loss", "val_loss"):  # same global batches; summation order drifts a little
            assert abs(a[key] - b[key]) <= 1e-2 * abs(b[key]), (key, a, b)
        assert abs(a["val_pearsonr"] - b["val_pearsonr"]) < 0.03, (a, b)
