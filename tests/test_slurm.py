"""The demo's data stage on a real one-node SLURM cluster through the Snakemake SLURM plugin."""

import filecmp
import os

import pytest
from helpers import REPO, run_snakemake
from slurm_cluster import Cluster, available

pytestmark = [pytest.mark.workflow, pytest.mark.slurm, pytest.mark.xdist_group("workflow")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(f"no test SLURM cluster: {reason}")
    c = Cluster(tmp_path_factory.mktemp("slurm")).start()
    yield c
    c.stop()


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
                  for f in fs)


def test_data_stage_through_slurm_equals_local(cluster, tmp_path, monkeypatch):
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)
    slurm, local = tmp_path / "slurm", tmp_path / "local"
    run_snakemake(slurm, "data", "--profile", str(REPO / "profiles/slurm"), "--jobs", "4",
                  "--default-resources", "slurm_partition=test", "mem_mb=1000", "runtime=30",
                  "--slurm-no-account", "--latency-wait", "5", "--slurm-keep-successful-logs",
                  "--slurm-init-seconds-before-status-checks", "1")
    run_snakemake(local, "data")
    files = _files(local / "results" / "data")
    assert files == _files(slurm / "results" / "data")
    _, mismatch, errors = filecmp.cmpfiles(local / "results/data", slurm / "results/data", files,
                                           shallow=False)
    assert not mismatch and not errors
    # every job went through sbatch: demo, prep group, 4 coverage, 3 tfrecords
    submitted = cluster.submitted_jobs()
    assert len(submitted) == 9, submitted
    logs = {p.name for p in (slurm / ".snakemake" / "slurm_logs").iterdir()}
    assert logs == {"rule_demo", "rule_coverage", "rule_tfrecords",
                    "group_prep_contigs_faidx_sequences_statistics"}
