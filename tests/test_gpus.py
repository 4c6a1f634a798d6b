"""GPU slot claims: concurrent jobs get distinct GPUs; a scheduler's choice is kept."""

import subprocess
import sys

import pytest

from seqnn.train.gpus import claim_gpu, job_threads

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


@pytest.mark.parametrize("threads, jobs, cores, gpus, expected", [
    (2, 3, 2, 0, 1),     # the demo on 2 cores: three 1-thread trainings, two at a time
    (8, 3, 32, 0, 8),    # the configured threads are the most a job takes
    (8, 3, 12, 0, 4),    # 12 cores shared by 3 jobs
    (8, 6, 4, 0, 1),     # never below one thread
    (2, 1, 16, 0, 2),
    (8, 3, 2, 1, 8),     # with a GPU: one job per GPU, the configured threads
    (8, 3, None, 0, 8),  # cluster run: each job gets its own node share
])
def test_job_threads(threads, jobs, cores, gpus, expected):
    assert job_threads(threads, jobs, cores, gpus) == expected
