"""One GPU per job on a multi-GPU workstation (a job claims a free GPU slot by file lock), and the
CPU threads of each job where there is no GPU.

Snakemake's `resources: gpu=N` (profiles/default) lets at most N GPU jobs run at once; each of
them calls `claim_gpu` before TensorFlow starts, takes the first GPU whose lock is free and sees
only that one (CUDA_VISIBLE_DEVICES). Where a scheduler already set CUDA_VISIBLE_DEVICES
(SLURM does), it is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time


def count_gpus() -> int:
    """GPUs the NVIDIA driver lists (0 without nvidia-smi), without importing TensorFlow."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def job_threads(threads: int, jobs: int, cores: int | None, gpus: int) -> int:
    """Threads of each of a step's `jobs` jobs (train: one per fold, evaluate: one per set...).

    With GPUs (`gpus` > 0) or where the total is unknown (`cores` None: a cluster run, where each
    job gets a node share of its own) a job takes the configured `threads`. On a CPU-only local
    run the step's jobs share the cores, so they run side by side instead of one after another:
    `min(threads, cores // jobs)`, at least 1 (2 cores, 3 folds: three 1-thread trainings, two
    at a time).
    """
    if gpus or not cores:
        return threads
    return max(1, min(threads, cores // max(jobs, 1)))


@contextlib.contextmanager
def claim_gpu(lock_dir: str, num_gpus: int | None = None, wait_s: float = 3600.0):
    """Within the block this process sees one free GPU (yields its index, or None without GPUs)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        yield os.environ["CUDA_VISIBLE_DEVICES"]
        return
    num_gpus = count_gpus() if num_gpus is None else num_gpus
    if num_gpus == 0:
        yield None
        return
    os.makedirs(lock_dir, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for i in range(num_gpus):
            f = open(os.path.join(lock_dir, f"gpu{i}.lock"), "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            os.environ["CUDA_VISIBLE_DEVICES"] = str(i)
            try:
                yield i
            finally:
                del os.environ["CUDA_VISIBLE_DEVICES"]
                f.close()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{lock_dir}: all {num_gpus} GPUs stayed busy for {wait_s:.0f} s")
        time.sleep(1)
