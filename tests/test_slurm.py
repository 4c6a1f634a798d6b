"""The whole workflow on a real one-node SLURM cluster, through the Snakemake SLURM plugin.

profiles/slurm is used as users get it, with what its EDIT lines ask for the test cluster: the
partition (`test`), no account. The cluster (tests/slurm_cluster.py) has fake GPUs, so the GPU
rules' `--gpus=1` is scheduled; TensorFlow runs on the CPU (config train.gpu is false).
A tiny genome and model keep it quick: every rule of `all` (data, training, evaluation,
prediction, interpretation, figures) runs as SLURM jobs while the local reference run goes on
beside it; the results must equal the local run's, and a second run must find nothing to do.
"""

import concurrent.futures
import filecmp
import json
import os
import zipfile

import pytest
import yaml
from conftest import write_tiny_bigwig, write_tiny_config, write_tiny_fasta, write_tiny_sheet
from helpers import REPO, run_snakemake
from slurm_cluster import Cluster, available

pytestmark = [pytest.mark.workflow, pytest.mark.slow, pytest.mark.slurm]

PROFILE = REPO / "profiles" / "slurm"
# one train/valid/test split, one track, one prediction shard: 13 SLURM jobs
TINY_PARAMS = {
    "train": {"batch_size": 4, "learning_rate": 0.01, "patience": 5, "train_epochs_max": 2},
    "model": {"seq_length": 512, "augment_rc": True, "augment_shift": 1,
              "trunk": [{"name": "conv_dna", "filters": 4, "kernel_size": 5, "pool_size": 16}],
              "head": {"name": "final", "units": 1, "activation": "softplus"}},
}
# SLURM jobs by the name the plugin gives their log folder and --comment
SLURM_JOBS = {"group_prep_contigs_faidx_sequences_statistics": 1, "rule_coverage": 1,
              "rule_tfrecords": 3, "rule_train": 1, "rule_evaluate": 1, "rule_predict": 1,
              "rule_gather_bigwig": 1, "rule_gradients": 1, "rule_ism": 1, "rule_variants": 1,
              "group_summary_config_page_cv_summary_interpret_plots_plots": 1}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(f"no test SLURM cluster: {reason}")
    c = Cluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield c
    finally:
        c.stop()


def tiny_workdir(work):
    """A tiny genome with one track, a tiny model trained for one epoch, one region to
    interpret, one variant to score, and their config."""
    (work / "tracks").mkdir(parents=True)
    write_tiny_fasta(work / "genome.fa")
    write_tiny_bigwig(work / "tracks" / "a.bw")
    write_tiny_sheet(work / "targets.tsv", [{"identifier": "a", "file": "tracks/a.bw"}])
    write_tiny_config(work / "config.yaml", "genome.fa", "targets.tsv", folds=0,
                      valid_frac=0.25, test_frac=0.25)
    (work / "regions.bed").write_text("chrI\t1000\t1100\tr0\n")
    chr_i = "".join((work / "genome.fa").read_text().split(">chrII")[0].splitlines()[1:])
    (work / "variants.vcf").write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chrI,length=3000>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        f"chrI\t1051\tv0\t{chr_i[1050]}\t{'C' if chr_i[1050] != 'C' else 'G'}\t.\t.\t.\n")
    config = yaml.safe_load((work / "config.yaml").read_text())
    # no threads here: the rules' own (as the profile's set-threads) count in both runs
    config.update(model="params.json", train={"epochs": 1, "seed": 0},
                  evaluate={"shifts": [0], "batch_size": 4, "tss": None},
                  predict={"shards": 1, "tss_bed": None}, plots={"n_loci": 1},
                  interpret={"bed": "regions.bed", "vcf": "variants.vcf", "ism_width": 4,
                             "plot_regions": 1, "plot_width": 20, "batch_size": 4})
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "params.json").write_text(json.dumps(TINY_PARAMS))
    return work


def _run_niced(*args):
    """run_snakemake at a lower CPU priority: on Linux nice() sets this (pool) thread's, and
    the processes it starts inherit it; the SLURM jobs (slurmd's children) keep theirs."""
    os.nice(10)
    return run_snakemake(*args)


def _files(root, skip=()):
    return sorted(p for p in (os.path.relpath(os.path.join(d, f), root)
                              for d, _, fs in os.walk(root) for f in fs)
                  if not p.startswith(skip))


def _keras_members(path):
    """A .keras file's weights and seqnn metadata (its metadata.json has the save date, and
    config.json Python object ids)."""
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in ("model.weights.h5", "seqnn.json")}


def _history(path):
    """history.tsv without its `seconds` column (wall time)."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"]
    return [[row[i] for i in keep] for row in rows]


def test_workflow_through_slurm_equals_local(cluster, tmp_path, monkeypatch):
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)
    slurm, local = tiny_workdir(tmp_path / "slurm"), tiny_workdir(tmp_path / "local")
    profile = yaml.safe_load((PROFILE / "profile.yaml").read_text())
    # the profile as it is, with its EDIT lines done for this cluster (--default-resources on
    # the command line replaces the profile's block: its entries are passed again)
    default_resources = {**profile["default-resources"], "slurm_partition": "test"}
    slurm_args = ["--configfile", str(slurm / "config.yaml"), "--profile", str(PROFILE),
                  "--default-resources", *(f"{k}={v}" for k, v in default_resources.items()),
                  "--slurm-no-account",  # no accounts here, and no accounting: no sacct
                  "--slurm-status-command", "squeue", "--slurm-keep-successful-logs",
                  "--latency-wait", "5",  # one file system here
                  # first status check after 5 s, not 40 (the plugin then waits 10 s more
                  # after each check that finds no job finished)
                  "--slurm-init-seconds-before-status-checks", "5"]
    # The local reference runs meanwhile, niced (the SLURM run mostly waits for its jobs).
    # A job's threads are its rule's (the profile's set-threads) scaled down to the CPUs it
    # sees: --cores all in both, as the plugin's job step has it, so TensorFlow uses as many
    # threads in each.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        local_run = pool.submit(
            _run_niced, local, "--configfile", str(local / "config.yaml"), "--cores", "all",
            "--set-threads", *(f"{r}={n}" for r, n in profile["set-threads"].items()))
        run_snakemake(slurm, *slurm_args)
        local_run.result()

    # every job went through sbatch, with the profile's resources (scontrol: what SLURM got)
    logs = slurm / ".snakemake" / "slurm_logs"
    assert {p.name: len(list(p.rglob("*.log"))) for p in logs.iterdir()} == SLURM_JOBS
    jobs = cluster.jobs()
    assert len(cluster.submitted_jobs()) == len(jobs) == sum(SLURM_JOBS.values())
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}
    assert {j["Partition"] for j in jobs} == {"test"}
    wanted = profile["set-resources"]
    gpu_rules = {rule for rule, res in wanted.items() if res.get("gpu")}
    assert {"train", "evaluate", "predict", "gradients", "ism", "variants"} <= gpu_rules
    for job in jobs:
        name = job["Comment"].split("_wildcards_")[0].removeprefix("rule_")
        if name in gpu_rules:  # --gpus=1 --cpus-per-gpu=N --mem M -t T, and a GPU allocated
            res = wanted[name]
            assert job["TresPerJob"] == "gres:gpu:1", job
            assert job["CpusPerTres"] == f"gres:gpu:{res['cpus_per_gpu']}", job
            assert job["JOB_GRES"] == "gpu:1", job  # one of the node's (fake) GPUs
            assert job["NumCPUs"] == str(res["cpus_per_gpu"]), job
            assert job["MinMemoryNode"] == f"{res['mem_mb']}M", job
        else:
            assert "TresPerJob" not in job and job["JOB_GRES"] == "(null)", job
    train = next(j for j in jobs if j["Comment"].startswith("rule_train"))
    assert train["TimeLimit"] == "1-00:00:00"  # runtime: 1440

    # the same results as the local run: data, evaluation, predictions and figures byte for
    # byte; the models' weights too (the .keras zip also holds the save date), and the
    # training history but for its wall times
    files = _files(local / "results", skip=("logs/", "benchmarks/", "models/"))
    assert len(files) == 34 and {"predict/a.bw", "plots/loci.png", "interpret/variants.h5",
                                 "plots/interpret/region0.png"} <= set(files), files
    assert files == _files(slurm / "results", skip=("logs/", "benchmarks/", "models/"))
    _, mismatch, errors = filecmp.cmpfiles(local / "results", slurm / "results", files,
                                           shallow=False)
    assert not mismatch and not errors, (mismatch, errors)
    for name in ("model_best.keras", "model_last.keras"):
        model = f"results/models/f0/{name}"
        assert _keras_members(local / model) == _keras_members(slurm / model), model
    history = "results/models/f0/history.tsv"
    assert _history(local / history) == _history(slurm / history)

    # a second run finds nothing to do, through SLURM or locally
    for args in (slurm_args, ["--configfile", str(slurm / "config.yaml")]):
        again = run_snakemake(slurm, *args, "--dry-run")
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    assert len(cluster.jobs()) == len(jobs)
