"""Training throughput on generated TFRecords: prints JSON figures.

    python benchmarks/bench_train.py [--baskerville] [--seconds 30] [--threads N]
                                     [--mixed-precision mixed_bfloat16] [--jit-compile]
                                     [--preset NAME ... | all] [--size micro]

(a) `config/models/demo.json` on 512 random demo-shaped sequences (2,048 bp, 128 bins x 4);
(b) with `--baskerville`, a baskerville-like model (131,072 bp; conv_dna 32 filters, kernel 7,
pool 8; res_tower 40->64 filters x4; one transformer block, 2 heads, key 32; two unet_conv;
Cropping1D 1024; 74 tracks; batch 4) on 45 random sequences, as baskerville's own test
(reference: ~10 s per epoch of 45 sequences on 2 cores, 4.5 sequences/s);
(c) with `--preset`, instead of (a), each named preset of config/models (`all`: every one) at
`--size` (default micro: the demo's 2,048 bp, 128 bins x 4) on 512 random sequences, with its
own train block.

Each model is compiled as `seqnn.train` does and fitted through `seqnn.data.dataset` (shuffled,
interleaved); after one warm-up pass (tracing), whole passes over the data are timed until
`--seconds` have passed (at least 3); figures are from the median pass. Model FLOPs count
the convolutions and matrix products of the forward pass, times 3 for training; the device
peak is a large square matmul timed here.
"""

import argparse
import json
import math
import os
import statistics
import tempfile
import time

import numpy as np

from seqnn import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASKERVILLE = {
    "train": {"batch_size": 4, "optimizer": "adam", "learning_rate": 0.0001,
              "loss": "poisson_mn", "total_weight": 0.2, "warmup_steps": 10000,
              "global_clipnorm": 0.1},
    "model": {
        "seq_length": 131072, "augment_rc": True, "augment_shift": 3, "activation": "gelu",
        "norm_type": "batch", "bn_momentum": 0.9, "kernel_initializer": "lecun_normal",
        "l2_scale": 1e-7,
        "trunk": [
            {"name": "conv_dna", "filters": 32, "kernel_size": 7, "norm_type": None,
             "activation": "linear", "pool_size": 8},
            {"name": "res_tower", "filters_init": 40, "filters_end": 64, "divisible_by": 8,
             "kernel_size": 5, "num_convs": 1, "pool_size": 2, "repeat": 4},
            {"name": "transformer_tower", "key_size": 32, "heads": 2,
             "num_position_features": 32, "dropout": 0.2, "repeat": 1},
            {"name": "unet_conv", "kernel_size": 3, "upsample_conv": True},
            {"name": "unet_conv", "kernel_size": 3, "upsample_conv": True},
            {"name": "Cropping1D", "cropping": 1024},
        ],
        "head": {"name": "final", "units": 74, "activation": "softplus"},
    },
}
BASKERVILLE_SEQS_PER_S = 45 / 10


def write_data(out: str, n: int, seq_length: int, target_length: int, tracks: int) -> str:
    """A train split of `n` random sequences and gamma-distributed float16 targets."""
    rng = np.random.default_rng(0)

    def examples():
        for _ in range(n):
            yield records.example({
                "sequence": rng.integers(0, 4, seq_length, dtype=np.uint8).tobytes(),
                "target": rng.gamma(1.0, 2.0, (target_length, tracks)).astype(np.float16)
                .tobytes(),
            })

    records.write_tfrecord(os.path.join(out, "tfrecords", "train-0.tfr"), examples())
    records.write_json({"num_targets": tracks, "seq_length": seq_length, "seq_depth": 4,
                        "seq_1hot": True, "target_length": target_length, "train_seqs": n},
                       os.path.join(out, "statistics.json"))
    return out


def forward_flops(model, seq_length: int) -> int:
    """FLOPs of one sequence's forward pass in convolutions and matrix products."""
    import tensorflow as tf

    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, seq_length, 4])).graph
    total = 0
    for op in graph.get_operations():
        if op.type not in ("MatMul", "BatchMatMulV2", "Conv2D", "DepthwiseConv2dNative"):
            continue
        out = op.outputs[0].shape.as_list()
        a, b = (t.shape.as_list() for t in op.inputs[:2])
        if op.type == "MatMul":
            inner = a[0] if op.get_attr("transpose_a") else a[1]
        elif op.type == "BatchMatMulV2":
            inner = a[-2] if op.get_attr("adj_x") else a[-1]
        elif op.type == "Conv2D":
            inner = b[0] * b[1] * b[2]
        else:
            inner = b[0] * b[1]
        total += 2 * math.prod(out) * inner
    return total


def peak_matmul(dtype: str, seconds: float = 3.0) -> float:
    """Measured FLOP/s of repeated square matmuls of `dtype` on TensorFlow's default device."""
    import tensorflow as tf

    n = 8192 if tf.config.list_physical_devices("GPU") else 2048
    a = tf.random.normal((n, n), dtype=dtype)
    b = tf.random.normal((n, n), dtype=dtype)
    tf.matmul(a, b).numpy()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(4):
            c = tf.matmul(a, b)
        c.numpy()
        reps += 4
    return 2 * n**3 * reps / (time.perf_counter() - start)


def bench(name: str, params: dict, n: int, tracks: int, seconds: float, mixed_precision,
          jit_compile) -> dict:
    import keras
    import tensorflow as tf

    from seqnn import train as T
    from seqnn.data import dataset
    from seqnn.model import build_model, target_length

    opts = T.train_options(params)
    seq_length = params["model"]["seq_length"]
    with tempfile.TemporaryDirectory() as tmp:
        write_data(tmp, n, seq_length, target_length(params), tracks)
        keras.utils.set_random_seed(0)
        with T.dtype_policy(mixed_precision):
            model = T.compile_model(params, opts, tracks, jit_compile=jit_compile)
        batch = opts["batch_size"]
        data = dataset(tmp, "train", batch, shuffle=True, seed=0,
                       shuffle_buffer=opts["shuffle_buffer"])
        data = data.filter(lambda x, y: tf.shape(x)[0] == batch).repeat()  # as seqnn.train
        steps = n // batch
        start = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
        warmup = time.perf_counter() - start
        times, start = [], time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < seconds:
            tic = time.perf_counter()
            model.fit(data, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
            times.append(time.perf_counter() - tic)
        epoch_s = statistics.median(times)
    with T.dtype_policy(None):
        flops = 3 * forward_flops(build_model(params), seq_length)
    seqs_per_s = steps * batch / epoch_s
    return {
        "model": name,
        "params": model.count_params(),
        "seq_length": seq_length,
        "batch_size": batch,
        "sequences_per_epoch": n,
        "epochs_timed": len(times),
        "seconds_per_epoch": round(epoch_s, 3),
        "seconds_per_epoch_range": [round(min(times), 3), round(max(times), 3)],
        "sequences_per_s": round(seqs_per_s, 2),
        "warmup_s": round(warmup, 1),
        "train_gflop_per_seq": round(flops / 1e9, 3),
        "achieved_gflop_per_s": round(flops * seqs_per_s / 1e9, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baskerville", action="store_true",
                        help="also the baskerville-like 131 kb model")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per model")
    parser.add_argument("--threads", type=int, help="TensorFlow CPU threads")
    parser.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--preset", nargs="+", metavar="NAME",
                        help="presets instead of the demo model (`all`: every preset)")
    parser.add_argument("--size", default="micro", help="named size of the presets")
    args = parser.parse_args()

    import tensorflow as tf

    from seqnn import train as T
    from seqnn.model import load_params, presets, resolve_model

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(args.threads, 2))
    compute = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(
        args.mixed_precision, "float32")
    peak = peak_matmul(compute)
    devices = [d.get("model") or d["name"] for d in T.devices()]
    if args.preset:
        names = presets() if args.preset == ["all"] else args.preset
        runs = [bench(name, resolve_model(name, size=args.size, tracks=4), 512, 4, args.seconds,
                      args.mixed_precision, args.jit_compile) for name in names]
    else:
        runs = [bench("demo", load_params(os.path.join(REPO, "config/models/demo.json")), 512,
                      4, args.seconds, args.mixed_precision, args.jit_compile)]
    if args.baskerville:
        runs.append(bench("baskerville_like", BASKERVILLE, 45, 74, args.seconds,
                          args.mixed_precision, args.jit_compile))
        runs[-1]["vs_baskerville_reference"] = round(
            runs[-1]["sequences_per_s"] / BASKERVILLE_SEQS_PER_S, 2)
    for run in runs:
        run["fraction_of_peak"] = round(run["achieved_gflop_per_s"] * 1e9 / peak, 3)
    print(json.dumps({
        "devices": devices,
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "mixed_precision": args.mixed_precision,
        "jit_compile": args.jit_compile,
        "peak_matmul_gflop_per_s": round(peak / 1e9, 1),
        "peak_dtype": compute,
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
