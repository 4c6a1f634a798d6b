"""The train rule on the demo: killed mid-run, a rerun resumes, and the model learns."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from helpers import REPO

pytest.importorskip("tensorflow")
from seqnn.model.build import build_model, load_model, save_model  # noqa: E402

pytestmark = [pytest.mark.workflow]


# A small CNN that learns the demo's planted motifs within a few epochs on 2 CPU cores.
DEMO_PARAMS = {
    "train": {"batch_size": 8, "optimizer": "adam", "learning_rate": 0.02, "warmup_steps": 50,
              "loss": "poisson", "patience": 5, "train_epochs_min": 3, "train_epochs_max": 30},
    "model": {
        "seq_length": 2048, "augment_rc": True, "augment_shift": 3, "activation": "gelu",
        "norm_type": "batch", "bn_momentum": 0.9,
        "trunk": [
            {"name": "conv_dna", "filters": 32, "kernel_size": 15, "pool_size": 2},
            {"name": "conv_tower", "filters_init": 32, "filters_mult": 1.0, "kernel_size": 5,
             "pool_size": 2, "repeat": 3},
            {"name": "dilated_residual", "filters": 32, "rate_mult": 2, "repeat": 4},
        ],
        "head": {"name": "final", "units": 4, "activation": "softplus"},
    },
}
DEMO_EPOCHS = 5
DEMO_MIN_R = 0.2


def _descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_demo_rule_resumes_after_kill_and_learns(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "params.json").write_text(json.dumps(DEMO_PARAMS))
    config = yaml.safe_load((tmp_path / "config/config.yaml").read_text())
    config.update(model="params.json", train={"epochs": DEMO_EPOCHS, "threads": 2})
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))
    target = "results/models/f0/model_best.keras"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--cores", "2", target]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    state = tmp_path / "results/models/f0/checkpoint/state.json"
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.time() + 240
    while not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
        assert run.poll() is None and time.time() < deadline, run.stderr.read()[-3000:]
        time.sleep(0.05)
    for pid in _descendants(run.pid):  # the job dies mid-training; snakemake sees it fail
        os.kill(pid, signal.SIGKILL)
    assert run.wait(60) != 0
    killed_at = json.loads(state.read_text())["epoch"]
    assert 2 <= killed_at < DEMO_EPOCHS and not (tmp_path / target).exists()

    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "results/logs/train/f0.log").read_text()
    assert f"resuming from results/models/f0/checkpoint after epoch {killed_at}" in log
    assert f"{DEMO_EPOCHS} epochs ({DEMO_EPOCHS - killed_at} this run" in log
    with open(tmp_path / "results/models/f0/history.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [int(r["epoch"]) for r in rows] == list(range(1, DEMO_EPOCHS + 1))
    r = [float(row["val_pearsonr"]) for row in rows]
    assert max(r) > DEMO_MIN_R, r  # the planted motifs are learnt, not just the track means
    model, meta = load_model(tmp_path / target)
    assert meta["statistics"]["fold1_seqs"] > 0 and model.output_shape == (None, 128, 4)


def test_pretrained_model_fine_tuned_per_fold(tmp_path):
    """`model: {pretrained: ...}` plus `transfer` fine-tunes the published weights per fold:
    here a model of two tracks on the demo's four (new head, trunk restored, mode linear), so
    the saved trunk is the pretrained one byte for byte and the params lose the transfer block.
    """
    shutil.copytree(REPO / "config", tmp_path / "config")
    pre = json.loads(json.dumps(DEMO_PARAMS))
    pre["model"]["head"]["units"] = 2
    pretrained = build_model(pre)
    save_model(pretrained, tmp_path / "pre.keras", params=pre, statistics={
        "seq_length": 2048, "pool_width": 16, "crop_bp": 0, "target_length": 128,
        "num_targets": 2})
    config = yaml.safe_load((tmp_path / "config/config.yaml").read_text())
    config.update(model={"pretrained": {"weights": "pre.keras"}}, train={"epochs": 1,
                                                                          "threads": 2},
                  transfer={"mode": "linear", "train": {"learning_rate": 0.01}})
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(config))
    target = "results/models/f0/model_best.keras"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--cores", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    dry = subprocess.run([*cmd, "-n"], env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "train" in dry.stdout and "evaluate" in dry.stdout  # downstream unchanged
    result = subprocess.run([*cmd, target], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    model, meta = load_model(tmp_path / target)
    assert model.output_shape == (None, 128, 4) and "transfer" not in meta["params"]
    assert meta["params"]["train"]["learning_rate"] == 0.01
    n = len(pretrained.weights) - 2  # all but the head's kernel and bias
    for a, b in zip(model.weights[:n], pretrained.weights[:n], strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), a.path
