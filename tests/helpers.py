"""Test helpers: paths, the real yeast data fixture and a snakemake runner."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
YEAST = REPO.parent / "shared" / "data" / "yeast"


def run_snakemake(workdir, *args, check=True):
    """Run the repository's workflow in `workdir` (with a copy of config/); return the result."""
    workdir = Path(workdir)
    if not (workdir / "config").exists():
        shutil.copytree(REPO / "config", workdir / "config")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--cores", "2", *args]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and result.returncode:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result
