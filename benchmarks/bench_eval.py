"""Evaluation throughput with and without the reverse-complement + shift ensemble: prints JSON.

    python benchmarks/bench_eval.py [--params config/models/demo.json] [--seqs 256]
                                    [--batch-size 8] [--shifts -1,0,1] [--threads N]

`config/models/demo.json` (random weights; 2,048 bp -> 128 bins x 4 tracks, the last two a
strand pair) is evaluated by `seqnn.evaluate.evaluate` on `--seqs` random sequences: once plain
(one pass) and once with `rc` and `--shifts` (2 x shifts passes). After a warm-up evaluation
(imports, first tracing), each mode runs `--repeats` times and the best time counts. The cost
ratio (plain seqs/s over ensemble seqs/s) should be close to the number of passes and no more;
`overhead_per_pass` is that ratio over the passes (1.0: each pass costs what the plain run's
does, metrics and I/O included). Two ceilings of the plain run: `forward_seqs_per_s`, the bare
compiled model on the same batches, and `pipeline_seqs_per_s`, `seqnn.train.dataset.dataset` alone
(reading, decompressing and parsing the TFRecords).
"""

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np

from seqnn.data import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n"


def write_data(out: str, n: int, seq_length: int, target_length: int, tracks: int) -> str:
    """A `test` split of `n` random sequences with gamma targets; the last two tracks a pair."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (n, seq_length), dtype=np.uint8)
    targets = rng.gamma(1.0, 2.0, (n, target_length, tracks)).astype(np.float16)
    records.write_tfrecord(os.path.join(out, "tfrecords", "test-0.tfr"), [
        records.example({"sequence": c.tobytes(), "target": t.tobytes()})
        for c, t in zip(codes, targets)])
    records.write_json({"num_targets": tracks, "seq_length": seq_length, "seq_depth": 4,
                        "seq_1hot": True, "pool_width": seq_length // target_length,
                        "crop_bp": 0, "target_length": target_length, "test_seqs": n},
                       os.path.join(out, "statistics.json"))
    pairs = list(range(tracks - 2)) + [tracks - 1, tracks - 2]
    rows = [f"{i}\tt{i}\tt{i}.bw\t\t\t1.0\tsum\t{p}\t" for i, p in enumerate(pairs)]
    with open(os.path.join(out, "targets.txt"), "w") as f:
        f.write(HEADER + "\n".join(rows) + "\n")
    return out


def best_rate(fn, n: int, repeats: int) -> float:
    """n / the shortest of `repeats` timed calls of fn()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / min(times)


def forward_rate(model, x: np.ndarray, batch_size: int, repeats: int) -> float:
    """Sequences per second of the compiled model alone on `x`, batch by batch."""
    import tensorflow as tf

    call = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    call(x[:batch_size])
    return best_rate(lambda: [np.asarray(call(x[i:i + batch_size]))
                              for i in range(0, len(x), batch_size)], len(x), repeats)


def pipeline_rate(data: str, batch_size: int, n: int, repeats: int) -> float:
    """Sequences per second of `seqnn.train.dataset.dataset` alone (read, decompress, parse,
    batch)."""
    from seqnn.train.dataset import dataset

    return best_rate(lambda: [x.numpy() for x, _ in dataset(data, "test", batch_size)], n,
                     repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=os.path.join(REPO, "config/models/demo.json"))
    parser.add_argument("--seqs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shifts", default="-1,0,1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    shifts = [int(s) for s in args.shifts.split(",")]

    import tensorflow as tf

    from seqnn.apply.evaluate import evaluate
    from seqnn.model.build import build_model, save_model
    from seqnn.model.params import target_length
    from seqnn.model.presets import load_params

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    params = load_params(args.params)
    model = build_model(params)
    _, bins, tracks = model.output_shape
    seq_length = model.input_shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(os.path.join(tmp, "data"), args.seqs, seq_length, bins, tracks)
        save_model(model, os.path.join(tmp, "model.keras"))
        path = os.path.join(tmp, "model.keras")

        def run(rc, shift_list):
            best = None
            for _ in range(args.repeats):
                out = evaluate(path, data, os.path.join(tmp, "out"), rc=rc, shifts=shift_list,
                               batch_size=args.batch_size)
                best = out if best is None or out["seconds"] < best["seconds"] else best
            return {"passes": best["passes"], "seconds": best["seconds"],
                    "seqs_per_s": best["seqs_per_s"]}

        x = np.eye(4, dtype=np.float32)[np.random.default_rng(1).integers(0, 4, (args.seqs,
                                                                              seq_length))]
        forward = forward_rate(model, x, args.batch_size, args.repeats)
        pipeline = pipeline_rate(data, args.batch_size, args.seqs, args.repeats)
        evaluate(path, data, os.path.join(tmp, "out"), batch_size=args.batch_size)  # warm-up
        plain = run(False, [0])
        ensemble = run(True, shifts)
    ratio = plain["seqs_per_s"] / ensemble["seqs_per_s"]
    gpus = tf.config.list_physical_devices("GPU")
    print(json.dumps({
        "device": tf.config.experimental.get_device_details(gpus[0]).get("device_name")
        if gpus else f"CPU ({os.cpu_count()} cores)",
        "params": os.path.relpath(args.params, REPO), "seq_length": seq_length,
        "target_length": target_length(params), "tracks": tracks, "sequences": args.seqs,
        "batch_size": args.batch_size, "forward_seqs_per_s": round(forward, 1),
        "pipeline_seqs_per_s": round(pipeline, 1),
        "plain": plain, "ensemble": {**ensemble, "rc": True, "shifts": shifts},
        "cost_ratio": round(ratio, 2), "overhead_per_pass": round(ratio / ensemble["passes"], 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
