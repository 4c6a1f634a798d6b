"""Training throughput on generated TFRecords: prints JSON figures.

    python benchmarks/bench_train.py [--baskerville] [--sequences 45] [--seconds 30]
                                     [--threads N] [--mixed-precision mixed_bfloat16]
                                     [--jit-compile] [--preset NAME ... | all] [--size micro]

(a) `config/models/demo.json` on 512 random demo-shaped sequences (2,048 bp, 128 bins x 4);
(b) with `--baskerville`, a baskerville-like model (131,072 bp; conv_dna 32 filters, kernel 7,
pool 8; res_tower 40->64 filters x4; one transformer block, 2 heads, key 32; two unet_conv;
Cropping1D 1024; 74 tracks; batch 4) on 45 random sequences, as baskerville's own test
(reference: ~10 s per epoch of 45 sequences on 2 cores, 4.5 sequences/s; on a GPU use more
`--sequences`, or fit()'s per-pass overhead dominates a 0.07 s pass);
(c) with `--preset`, instead of (a), each named preset of config/models (`all`: every one) at
`--size` (default micro: the demo's 2,048 bp, 128 bins x 4) on 512 random sequences, with its
own train block.

Each model is compiled as `seqnn.train.loop` does and fitted through
`seqnn.train.dataset.dataset` (shuffled, interleaved); after one warm-up pass (tracing), whole
passes over the data are timed until `--seconds` have passed (at least 3); figures are from the
median pass. Model FLOPs count
the convolutions and matrix products of the forward pass, times 3 for training; the device
peak is a large square matmul timed here.

The model is pure Keras 3, so the benchmark also runs under `KERAS_BACKEND=jax` (for a GPU
machine that has JAX but no TensorFlow): the data are then held in memory as arrays, and
`--jit-compile` off means JAX's op-by-op eager mode, not TensorFlow's graph mode.
"""

import argparse
import json
import math
import os
import statistics
import tempfile
import time

import numpy as np

from seqnn.data import records

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


def random_data(n: int, seq_length: int, target_length: int, tracks: int):
    """`n` random sequences (base codes 0-3) and gamma-distributed float16 targets."""
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 4, (n, seq_length), dtype=np.uint8)
    targets = rng.gamma(1.0, 2.0, (n, target_length, tracks)).astype(np.float16)
    return seqs, targets


def write_data(out: str, n: int, seq_length: int, target_length: int, tracks: int) -> str:
    """A train split of `random_data` as TFRecords with its statistics.json."""
    seqs, targets = random_data(n, seq_length, target_length, tracks)
    examples = (records.example({"sequence": s.tobytes(), "target": t.tobytes()})
                for s, t in zip(seqs, targets))
    records.write_tfrecord(os.path.join(out, "tfrecords", "train-0.tfr"), examples)
    records.write_json({"num_targets": tracks, "seq_length": seq_length, "seq_depth": 4,
                        "seq_1hot": True, "target_length": target_length, "train_seqs": n},
                       os.path.join(out, "statistics.json"))
    return out


def forward_flops(model, seq_length: int) -> int:
    """FLOPs of one sequence's forward pass in convolutions and matrix products."""
    import keras

    if keras.backend.backend() == "jax":
        return _jax_flops(model, seq_length)
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


def _jax_flops(model, seq_length: int) -> int:
    """`forward_flops` under the JAX backend: dot_general and convolutions of the jaxpr."""
    import jax
    import jax.extend

    def count(jaxpr) -> int:
        total = 0
        for eqn in jaxpr.eqns:
            out = eqn.outvars[0].aval.shape
            if eqn.primitive.name == "dot_general":
                (contract, _), _ = eqn.params["dimension_numbers"]
                lhs = eqn.invars[0].aval.shape
                total += 2 * math.prod(out) * math.prod(lhs[d] for d in contract)
            elif eqn.primitive.name == "conv_general_dilated":
                rhs = eqn.invars[1].aval.shape
                out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
                total += 2 * math.prod(out) * math.prod(rhs) // out_features
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                total += count(sub)
        return total

    spec = jax.ShapeDtypeStruct((1, seq_length, 4), "float32")
    return count(jax.make_jaxpr(lambda x: model(x, training=False))(spec).jaxpr)


def device_names() -> list[str]:
    """The devices of the Keras backend (GPU model names where known)."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return [d.device_kind for d in jax.devices()]
    from seqnn.train.runtime import devices

    return [d.get("model") or d["name"] for d in devices()]


def peak_matmul(dtype: str, seconds: float = 3.0) -> float:
    """Measured FLOP/s of repeated square matmuls of `dtype` on the backend's default device."""
    import keras
    from keras import ops

    gpu = any("CPU" not in name.upper() for name in device_names())
    n = 8192 if gpu else 2048
    a = keras.random.normal((n, n), dtype=dtype, seed=0)
    b = keras.random.normal((n, n), dtype=dtype, seed=1)
    ops.convert_to_numpy(ops.matmul(a, b))
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(4):
            c = ops.matmul(a, b)
        ops.convert_to_numpy(c[:1, :1])
        reps += 4
    return 2 * n**3 * reps / (time.perf_counter() - start)


def training_data(tmp: str, n: int, seq_length: int, target_length: int, tracks: int,
                  batch: int, shuffle_buffer: int) -> dict:
    """`model.fit` arguments for `n` random examples: under TensorFlow, TFRecords written to
    `tmp` through `seqnn.train.dataset.dataset` as `seqnn.train.loop` reads them; under another
    backend (JAX on a GPU machine without TensorFlow), one-hot arrays held in memory."""
    import keras

    if keras.backend.backend() != "tensorflow":
        seqs, targets = random_data(n, seq_length, target_length, tracks)
        return {"x": np.eye(4, dtype=np.float32)[seqs], "y": targets.astype(np.float32),
                "batch_size": batch, "shuffle": True}
    import tensorflow as tf

    from seqnn.train.dataset import dataset

    write_data(tmp, n, seq_length, target_length, tracks)
    data = dataset(tmp, "train", batch, shuffle=True, seed=0, shuffle_buffer=shuffle_buffer)
    data = data.filter(lambda x, y: tf.shape(x)[0] == batch).repeat()  # as seqnn.train.loop
    return {"x": data, "steps_per_epoch": n // batch, "shuffle": False}


def bench(name: str, params: dict, n: int, tracks: int, seconds: float, mixed_precision,
          jit_compile) -> dict:
    import keras

    from seqnn.model.build import build_model
    from seqnn.model.params import target_length
    from seqnn.train import loop as T
    from seqnn.train import options, runtime

    opts = options.train_options(params)
    seq_length = params["model"]["seq_length"]
    batch = opts["batch_size"]
    steps = n // batch
    with tempfile.TemporaryDirectory() as tmp:
        data = training_data(tmp, steps * batch, seq_length, target_length(params), tracks,
                             batch, opts["shuffle_buffer"])
        keras.utils.set_random_seed(0)
        with runtime.dtype_policy(mixed_precision):
            model = T.compile_model(params, opts, tracks, jit_compile=jit_compile)
        start = time.perf_counter()
        model.fit(**data, epochs=1, verbose=0)
        warmup = time.perf_counter() - start
        times, start = [], time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < seconds:
            tic = time.perf_counter()
            model.fit(**data, epochs=1, verbose=0)
            times.append(time.perf_counter() - tic)
        epoch_s = statistics.median(times)
    with runtime.dtype_policy(None):
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
    parser.add_argument("--sequences", type=int, default=45,
                        help="training sequences of the baskerville-like model")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per model")
    parser.add_argument("--threads", type=int, help="TensorFlow CPU threads")
    parser.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--preset", nargs="+", metavar="NAME",
                        help="presets instead of the demo model (`all`: every preset)")
    parser.add_argument("--size", default="micro", help="named size of the presets")
    args = parser.parse_args()

    import keras

    from seqnn.model.presets import load_params, presets, resolve_model
    from seqnn.train import runtime

    if keras.backend.backend() == "tensorflow":
        runtime.set_threads(args.threads)
    compute = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(
        args.mixed_precision, "float32")
    peak = peak_matmul(compute)
    devices = device_names()
    if args.preset:
        names = presets() if args.preset == ["all"] else args.preset
        runs = [bench(name, resolve_model(name, size=args.size, tracks=4), 512, 4, args.seconds,
                      args.mixed_precision, args.jit_compile) for name in names]
    else:
        runs = [bench("demo", load_params(os.path.join(REPO, "config/models/demo.json")), 512,
                      4, args.seconds, args.mixed_precision, args.jit_compile)]
    if args.baskerville:
        runs.append(bench("baskerville_like", BASKERVILLE, args.sequences, 74, args.seconds,
                          args.mixed_precision, args.jit_compile))
        runs[-1]["vs_baskerville_reference"] = round(
            runs[-1]["sequences_per_s"] / BASKERVILLE_SEQS_PER_S, 2)
    for run in runs:
        run["fraction_of_peak"] = round(run["achieved_gflop_per_s"] * 1e9 / peak, 3)
    print(json.dumps({
        "backend": keras.backend.backend(),
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
