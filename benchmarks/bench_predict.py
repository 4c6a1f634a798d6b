"""Genome-wide prediction throughput on the real yeast genome: prints JSON figures.

    python benchmarks/bench_predict.py [--yeast ../shared/data/yeast] [--batch-size 32]
                                       [--repeats 3]

The demo model (config/models/demo.json, seeded random weights: speed does not depend on
them) predicts the 3.3 Mb yeast genome into bigWigs with `seqnn.predict.predict` (tiling,
tf.data streaming, stitching, HDF5 shard, four bigWigs) without test-time augmentation and with
reverse complement and shifts -1, 0, 1 (6 members), each also with XLA (`jit_compile`). The
baseline is a plain `model.predict` over the same windows, one-hot encoded in memory beforehand
(both include one trace). Ratios divide by the baseline times the members: `stream` is the
tiling/streaming/stitching/HDF5 loop alone, `wall` adds model loading and the bigWigs
(TensorFlow's import is timed apart). Each run is a fresh process, so its peak RSS is its own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {"plain": {"rc": False, "shifts": [0]}, "tta": {"rc": True, "shifts": [-1, 0, 1]},
        "plain_xla": {"rc": False, "shifts": [0], "jit_compile": True},
        "tta_xla": {"rc": True, "shifts": [-1, 0, 1], "jit_compile": True}}


def make_model(path: str) -> None:
    import keras

    from seqnn.data.targets import read_sheet
    from seqnn.model.build import build_model, save_model
    from seqnn.model.presets import load_params

    keras.utils.set_random_seed(0)
    params = load_params(os.path.join(REPO, "config/models/demo.json"))
    sheet = read_sheet(os.path.join(REPO, "config/targets.tsv"))
    model = build_model(params, list(sheet.strand_pair))
    stats = {"num_targets": 4, "seq_length": 2048, "pool_width": 16, "crop_bp": 0,
             "target_length": 128}
    save_model(model, path, params=params, targets=sheet, statistics=stats)


def run_predict(model: str, fasta: str, out: str, name: str, batch_size: int) -> dict:
    from seqnn.apply.predict import predict

    tic = time.perf_counter()
    summary = predict([model], fasta, out, batch_size=batch_size, **RUNS[name])
    wall = time.perf_counter() - tic
    return {"wall_s": round(wall, 2), "stream_s": summary["seconds"],
            "bp_per_s": round(summary["bp"] / wall),
            "stream_bp_per_s": summary["bp_per_s"], "members": summary["members"],
            "windows": summary["windows"], "bp": summary["bp"]}


def run_baseline(model: str, fasta: str, batch_size: int) -> dict:
    """model.predict over the windows `predict` tiles (default overlap), one-hot in memory."""
    import numpy as np

    from seqnn.apply.ensemble import load_ensemble
    from seqnn.apply.tiling import Tiling, prediction_runs
    from seqnn.data.dna import one_hot
    from seqnn.data.fasta import chrom_sizes, fetch_codes, open_fasta

    ens = load_ensemble([model])
    tiling = Tiling(ens.target_length, ens.target_length // 4)
    p, s, a = ens.pool_width, tiling.stride, tiling.lead
    starts = [(r.chrom, r.start + (w * s - a) * p - ens.crop_bp)
              for r in prediction_runs(chrom_sizes(fasta), p).itertuples()
              for w in tiling.windows(0, r.bins)]
    with open_fasta(fasta) as fa:
        codes = [fetch_codes(fa, c, start, start + ens.seq_length) for c, start in starts]
    x = one_hot(np.stack(codes))
    tic = time.perf_counter()
    ens.models[0].predict(x, batch_size=batch_size, verbose=0)
    wall = time.perf_counter() - tic
    bp = sum(chrom_sizes(fasta).values())
    return {"wall_s": round(wall, 2), "bp_per_s": round(bp / wall), "windows": len(x)}


def child(args) -> None:
    import seqnn  # noqa: F401  (first, as the command line does: its TensorFlow defaults)

    tic = time.perf_counter()
    import tensorflow  # noqa: F401  (timed apart: every run pays it once)

    import_s = round(time.perf_counter() - tic, 2)
    if args.child == "baseline":
        result = run_baseline(args.model, args.fasta, args.batch_size)
    else:
        with tempfile.TemporaryDirectory() as out:
            result = run_predict(args.model, args.fasta, out, args.child, args.batch_size)
    result["import_tf_s"] = import_s
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yeast", default=os.path.join(REPO, "../shared/data/yeast"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per setting; the fastest is reported (shared machines)")
    parser.add_argument("--child", choices=["baseline", *RUNS], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--fasta", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    fasta = os.path.join(args.yeast, "yeast_II_IV_XVI.fa")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "demo.keras")
        make_model(model)
        results = {}
        for name in ["baseline", *RUNS]:
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", name, "--model", model, "--fasta",
                     fasta, "--batch-size", str(args.batch_size)],
                    env=env, capture_output=True, text=True, check=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            results[name] = min(runs, key=lambda r: r["wall_s"])
            results[name]["wall_s_all"] = [r["wall_s"] for r in runs]
    base = results["baseline"]["wall_s"]
    for name in RUNS:
        r, work = results[name], base * results[name]["members"]
        r["stream_vs_model_predict"] = round(r["stream_s"] / work, 3)
        r["wall_vs_model_predict"] = round(r["wall_s"] / work, 3)
    results["settings"] = {
        "model": "config/models/demo.json", "genome_bp": results["plain"]["bp"],
        "batch_size": args.batch_size, "repeats": args.repeats, "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2), "gpu": None}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
