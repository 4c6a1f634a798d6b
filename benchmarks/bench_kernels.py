"""Custom convolution kernels against `keras.layers.Conv1D` on this CPU: prints JSON figures.

    python benchmarks/bench_kernels.py [--repeats 7] [--epochs 4] [--threads N] [--no-model]
                                       [--layers NAME ...] [--baskerville]

Per layer shape, one forward and backward pass (the weight gradients, and the input gradient
for layers inside the trunk) of `seqnn.model.conv`'s kernel (run with `SEQNN_CONV=custom`)
and of a `Conv1D` with the same weights, in ms: the median over `--repeats` interleaved
repeats, each timing a fixed number of passes of both (the order alternating between
repeats). The shapes are
- demo_first: the demo's first layer (conv_dna: 4 -> 32 channels, kernel 15, 2,048 bp,
  batch 8; `UnfoldConv1D`);
- baskerville_first: bench_train's baskerville-like first layer (4 -> 32, kernel 7, 131,072
  bp, batch 4; `UnfoldConv1D`);
- demo_residual: the demo's first dilated residual conv (32 -> 32, kernel 3, dilation 1, 128
  bins, batch 8; `TapConv1D`);
- baskerville_tower: the baskerville-like res_tower's first conv (32 -> 40, kernel 5, 16,384
  bins, batch 4; `TapConv1D`);
- yeast_tower: the yeast config's micro dilated_conv conv_tower (24 -> 28, kernel 5, 8,192
  bins, batch 4; `TapConv1D`).

Then the whole demo model (`config/models/demo.json`) trained as bench_train does, one model
traced under each choice, and `--epochs` epochs of each timed alternately: the median
sequences per second; then alternating blocks of `train_on_batch` steps on one fixed batch
(20 blocks of 10 steps; no input pipeline, so steadier on a shared machine): the median ms per
step. With `--baskerville`, also bench_train's baskerville-like model (44 sequences an epoch,
batch 4; 8 blocks of 3 steps; about 1.5 minutes more). With the CPU's model and AVX flags,
and the kernels `seqnn.model.cpu.conv_kernels` picks here. TensorFlow backend; under 2 minutes
on 2 cores.
"""

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time

import bench_train
import numpy as np

from seqnn.model import cpu

LAYERS = {  # name: (class, input channels, filters, kernel, length, batch, input gradient)
    "demo_first": ("UnfoldConv1D", 4, 32, 15, 2048, 8, False),
    "baskerville_first": ("UnfoldConv1D", 4, 32, 7, 131072, 4, False),
    "demo_residual": ("TapConv1D", 32, 32, 3, 128, 8, True),
    "baskerville_tower": ("TapConv1D", 32, 40, 5, 16384, 4, True),
    "yeast_tower": ("TapConv1D", 24, 28, 5, 8192, 4, True),
}


@contextlib.contextmanager
def kernels(choice: str):
    """`SEQNN_CONV=choice` inside the block (a step traced there keeps the choice)."""
    old = os.environ.get(cpu.ENV)
    os.environ[cpu.ENV] = choice
    try:
        yield
    finally:
        if old is None:
            del os.environ[cpu.ENV]
        else:
            os.environ[cpu.ENV] = old


def timed(fn, passes: int) -> float:
    """ms per call of `fn` over `passes` calls (synchronised on the last result)."""
    start = time.perf_counter()
    for _ in range(passes):
        out = fn()
    np.asarray(out[0])
    return (time.perf_counter() - start) * 1e3 / passes


def bench_layer(name: str, repeats: int) -> dict:
    import keras
    import tensorflow as tf

    from seqnn.model import conv

    cls, channels, filters, size, length, batch, input_grad = LAYERS[name]
    rng = np.random.default_rng(0)
    if input_grad:
        x = tf.constant(rng.normal(size=(batch, length, channels)).astype("float32"))
    else:  # one-hot DNA
        x = tf.constant(np.eye(4, dtype="float32")[rng.integers(0, 4, (batch, length))])
    dy = tf.constant(rng.normal(size=(batch, length, filters)).astype("float32"))
    custom = getattr(conv, cls)(filters, size, padding="same", use_bias=True)
    plain = keras.layers.Conv1D(filters, size, padding="same", use_bias=True)
    custom(x), plain(x)
    plain.set_weights(custom.get_weights())

    def step(layer):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                if input_grad:
                    tape.watch(x)
                y = layer(x)
                loss = tf.reduce_sum(y * dy)
            sources = [x] * input_grad + layer.trainable_variables
            return [y, *tape.gradient(loss, sources)]
        return run

    with kernels("custom"):
        runs = {"custom": step(custom)}
        first = runs["custom"]()  # traced here
    runs["keras"] = step(plain)
    second = runs["keras"]()
    diff = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
               for a, b in zip(first, second))
    per_pass = timed(runs["keras"], 2)
    passes = max(2, int(200 / max(per_pass, 1e-3)))  # ~0.2 s per variant and repeat
    times = {k: [] for k in runs}
    for rep in range(repeats):
        for k in (("custom", "keras") if rep % 2 == 0 else ("keras", "custom")):
            times[k].append(timed(runs[k], passes))
    ms = {k: statistics.median(v) for k, v in times.items()}
    return {
        "layer": name, "class": cls, "in_channels": channels, "filters": filters,
        "kernel_size": size, "length": length, "batch": batch, "input_gradient": input_grad,
        "passes_per_repeat": passes, "repeats": repeats,
        "custom_ms": round(ms["custom"], 3), "keras_ms": round(ms["keras"], 3),
        "custom_ms_range": [round(min(times["custom"]), 3), round(max(times["custom"]), 3)],
        "keras_ms_range": [round(min(times["keras"]), 3), round(max(times["keras"]), 3)],
        "keras_over_custom": round(ms["keras"] / ms["custom"], 3),
        "faster": min(ms, key=ms.get),
        "max_relative_difference": float(f"{diff:.2g}"),
    }


def bench_model(name: str, params: dict, n: int, tracks: int, epochs: int, blocks: int,
                steps: int) -> dict:
    """Model `params` trained on `n` random sequences under each choice, epochs timed
    alternately; then `blocks` alternating blocks of `steps` `train_on_batch` steps each on
    one fixed batch (no input pipeline: steadier than whole epochs on a shared machine)."""
    import keras

    from seqnn.model.params import target_length
    from seqnn.train import loop as T
    from seqnn.train import options

    opts = options.train_options(params)
    batch = opts["batch_size"]
    n = n // batch * batch
    with tempfile.TemporaryDirectory() as tmp:
        data = bench_train.training_data(tmp, n, params["model"]["seq_length"],
                                         target_length(params), tracks, batch,
                                         opts["shuffle_buffer"])
        models, warmup = {}, {}
        for choice in ("custom", "keras"):
            with kernels(choice):
                keras.utils.set_random_seed(0)
                models[choice] = T.compile_model(params, opts, tracks)
                tic = time.perf_counter()
                models[choice].fit(**data, epochs=1, verbose=0)  # traced here
                warmup[choice] = time.perf_counter() - tic
        times = {k: [] for k in models}
        for rep in range(epochs):
            for k in (("custom", "keras") if rep % 2 == 0 else ("keras", "custom")):
                tic = time.perf_counter()
                models[k].fit(**data, epochs=1, verbose=0)
                times[k].append(time.perf_counter() - tic)
    seqs, targets = bench_train.random_data(batch, params["model"]["seq_length"],
                                            target_length(params), tracks)
    x, y = np.eye(4, dtype="float32")[seqs], targets.astype("float32")
    step_ms = {k: [] for k in models}
    for rep in range(blocks):
        for k in (("custom", "keras") if rep % 2 == 0 else ("keras", "custom")):
            tic = time.perf_counter()
            for _ in range(steps):
                models[k].train_on_batch(x, y)
            step_ms[k].append((time.perf_counter() - tic) * 1e3 / steps)
    step = {k: statistics.median(v) for k, v in step_ms.items()}
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    return {
        "model": name, "sequences_per_epoch": n, "batch_size": batch, "epochs_timed": epochs,
        "custom_seq_per_s": round(rate["custom"], 1), "keras_seq_per_s": round(rate["keras"], 1),
        "custom_seq_per_s_range": [round(n / max(times["custom"]), 1),
                                   round(n / min(times["custom"]), 1)],
        "keras_seq_per_s_range": [round(n / max(times["keras"]), 1),
                                  round(n / min(times["keras"]), 1)],
        "keras_over_custom": round(rate["keras"] / rate["custom"], 3),
        "warmup_s": {k: round(v, 1) for k, v in warmup.items()},
        "step_blocks": [blocks, steps],
        "custom_step_ms": round(step["custom"], 2), "keras_step_ms": round(step["keras"], 2),
        "custom_step_ms_range": [round(min(step_ms["custom"]), 2),
                                 round(max(step_ms["custom"]), 2)],
        "keras_step_ms_range": [round(min(step_ms["keras"]), 2), round(max(step_ms["keras"]), 2)],
        "step_custom_over_keras": round(step["custom"] / step["keras"], 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats per layer")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per choice")
    parser.add_argument("--threads", type=int, help="TensorFlow CPU threads")
    parser.add_argument("--layers", nargs="+", choices=sorted(LAYERS), default=list(LAYERS))
    parser.add_argument("--no-model", action="store_true", help="no demo model")
    parser.add_argument("--baskerville", action="store_true",
                        help="also bench_train's baskerville-like model (44 sequences/epoch)")
    args = parser.parse_args()

    from seqnn.model.presets import load_params
    from seqnn.train import runtime

    runtime.set_threads(args.threads)
    chosen = cpu.describe()
    layers = [bench_layer(name, args.repeats) for name in args.layers]
    out = {**chosen, "cpu_count": os.cpu_count(), "threads": args.threads, "layers": layers}
    if not args.no_model:
        demo = load_params(os.path.join(bench_train.REPO, "config/models/demo.json"))
        out["models"] = [bench_model("demo", demo, 512, 4, args.epochs, 20, 10)]
    if args.baskerville:
        out.setdefault("models", []).append(bench_model(
            "baskerville_like", bench_train.BASKERVILLE, 44, 74, args.epochs, 8, 3))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
