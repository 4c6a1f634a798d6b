"""The embedded demo end to end, as `make demo` runs it: prints JSON figures.

    python benchmarks/bench_demo.py --dir DIR [--cores 2] [--snakefile PATH] [--keep]

Runs `snakemake --cores N` (this Python's snakemake, the workflow at `--snakefile`, default this
checkout's) in DIR (created; its results/, resources/ and .snakemake/ are removed first unless
`--keep`), with the library of the Snakefile's checkout (`src/` beside it) first on the path, so
an older checkout is measured with its own code. Prints: wall seconds, CPU seconds of every job
(user + system of the whole process tree), cores busy on average (CPU / wall), the load average
before and after (other work on the machine), seconds per rule from results/benchmarks/, the
cross-validation summary (cv_summary.tsv, per track: mean test Pearson r of the fold models and
of the fold ensembles, and the lowest fold's) and, per motif kind, the AUROC and sign fraction
of the workflow's own gradient maps (`seqnn.apply.motifs.demo_recovery`). Compare two
checkouts by running both back to back.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rule_seconds(results: Path) -> dict:
    """Wall seconds of each rule's jobs, summed, from Snakemake's benchmark files."""
    out = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks")
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        out[rule] = round(out.get(rule, 0) + float(pd.read_csv(tsv, sep="\t")["s"].iloc[0]), 1)
    return out


def accuracy(results: Path) -> dict:
    """From results/eval/cv_summary.tsv, per track: the mean test Pearson r over folds of the
    single models and of the fold ensembles, and the lowest single fold's."""
    summary = pd.read_csv(results / "eval/cv_summary.tsv", sep="\t")
    r = summary[summary.metric == "pearsonr"].set_index(["model", "identifier"])
    folds = r.filter(regex=r"^f\d+$")
    return {"mean_r": r["mean"].loc["single"].round(3).to_dict(),
            "ensemble_mean_r": r["mean"].loc["ensemble"].round(3).to_dict(),
            "min_fold_r": folds.loc["single"].min(axis=1).round(3).to_dict()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="working directory of the run")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--snakefile", default=str(REPO / "Snakefile"))
    parser.add_argument("--keep", action="store_true", help="keep earlier results in --dir")
    args = parser.parse_args()
    work, snakefile = Path(args.dir).resolve(), Path(args.snakefile).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if not args.keep:
        for name in ("results", "resources/demo", ".snakemake"):
            shutil.rmtree(work / name, ignore_errors=True)
    if not (work / "config").exists() and work != snakefile.parent:  # an older Snakefile reads
        shutil.copytree(snakefile.parent / "config", work / "config")  # ./config/config.yaml
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(snakefile.parent / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    load_before = os.getloadavg()[0]
    cpu, tic = cpu_seconds(), time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "--cores",
                          str(args.cores), "-d", str(work)], env=env, capture_output=True,
                         text=True)
    wall, cpu = time.perf_counter() - tic, cpu_seconds() - cpu
    if run.returncode:
        sys.exit(f"snakemake failed (rc {run.returncode}):\n{run.stderr[-3000:]}")
    from seqnn.apply.motifs import demo_recovery

    results = work / "results"
    out = {"snakefile": str(snakefile), "cores": args.cores, "wall_s": round(wall, 1),
           "cpu_s": round(cpu, 1), "cores_busy": round(cpu / wall, 2),
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
           "rule_s": rule_seconds(results), **accuracy(results),
           "motifs": demo_recovery(str(results / "interpret/gradients.h5"),
                                   str(work / "resources/demo/motifs.bed"))}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
