"""Data-stage throughput on the real yeast set: prints JSON figures.

    python benchmarks/bench_data.py [--yeast ../shared/data/yeast] [--workers 2]

Runs contigs -> sequences -> coverage (one task per track) -> TFRecords (one task per fold)
-> statistics with the same library calls as the workflow's rules, at seq_length 16384,
pool_width 32, 4 folds, stride 8192, on `--workers` processes, in a temporary folder.
"""

import argparse
import json
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from seqnn.data import coverage, genome, records, targets
from seqnn.data.fasta import chrom_sizes

SETTINGS = {"seq_length": 16384, "pool_width": 32, "folds": 4, "stride": 8192, "seed": 44}


def run(yeast: str, out: str, workers: int) -> dict:
    fasta = os.path.join(yeast, "yeast_II_IV_XVI.fa")
    s = SETTINGS
    sheet = targets.read_sheet("config/yeast/targets.tsv")
    sheet["file"] = [os.path.join(yeast, os.path.basename(f)) for f in sheet.file]
    t0 = time.perf_counter()
    sizes = chrom_sizes(fasta)
    genome.write_contigs(fasta, f"{out}/contigs.bed", s["seq_length"], s["folds"], s["seed"],
                         break_length=200_000)
    seqs = genome.write_sequences(f"{out}/contigs.bed", f"{out}/sequences.bed", s["seq_length"],
                                  s["folds"], s["stride"], s["stride"], sizes)
    cov = [f"{out}/coverage/{t}.h5" for t in sheet.identifier]
    labels = genome.fold_labels(s["folds"])
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(coverage.write_coverage, sheet.to_dict("records"),
                      [f"{out}/sequences.bed"] * len(cov), cov, [sizes] * len(cov),
                      [s["pool_width"]] * len(cov)))
        list(pool.map(records.write_split, [fasta] * len(labels), [None] * len(labels),
                      [seqs] * len(labels), [cov] * len(labels),
                      [f"{out}/tfrecords"] * len(labels), labels, [64] * len(labels)))
    records.write_json(records.statistics(seqs, labels, len(sheet), s["pool_width"], 0),
                       f"{out}/statistics.json")
    wall = time.perf_counter() - t0
    rss = max(resource.getrusage(who).ru_maxrss for who in
              (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {
        "wall_s": round(wall, 3),
        "sequences": len(seqs),
        "tracks": len(sheet),
        "sequences_per_s": round(len(seqs) / wall, 1),
        "genome_mb_per_s": round(sum(sizes.values()) / 1e6 / wall, 2),
        "peak_rss_mb": round(rss / 1024, 1),
        "workers": workers,
        **SETTINGS,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yeast", default="../shared/data/yeast")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="report the median run")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out:
            runs.append(run(args.yeast, out, args.workers))
    result = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    result["wall_s_all"] = [r["wall_s"] for r in runs]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
