"""GPU slot claims: concurrent jobs get distinct GPUs; a scheduler's choice is kept."""

import subprocess
import sys

import pytest

from seqnn.train.gpus import claim_gpu

HOLD = """
import sys, time
from seqnn.train.gpus import claim_gpu
with claim_gpu(sys.argv[1], num_gpus=2) as gpu:
    print(gpu, flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_concurrent_jobs_get_distinct_gpus(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    jobs = [subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), "3"],
                             stdout=subprocess.PIPE, text=True) for _ in range(2)]
    first = [job.stdout.readline().strip() for job in jobs]
    assert sorted(first) == ["0", "1"]
    # a third job waits for a slot: here it times out while both are held
    with pytest.raises(TimeoutError, match="all 2 GPUs stayed busy"), \
            claim_gpu(str(tmp_path), num_gpus=2, wait_s=0.5):
        pass
    for job in jobs:
        job.wait()
    with claim_gpu(str(tmp_path), num_gpus=2) as gpu:
        assert gpu == 0  # released when the jobs ended


def test_scheduler_assignment_kept_and_no_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with claim_gpu(str(tmp_path), num_gpus=4) as gpu:
        assert gpu == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with claim_gpu(str(tmp_path), num_gpus=0) as gpu:
        assert gpu is None
