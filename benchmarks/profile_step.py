"""Where a training step's time goes, per layer kind, with custom and Keras convolution kernels.

    python benchmarks/profile_step.py [--preset dilated_conv --size micro --seq-length 16384
                                       --pool-width 32 --tracks 5] [--repeats 7] [--steps 30]

Defaults: the yeast config's model (config/yeast: micro dilated_conv on 16,384 bp, 32 bp bins,
5 tracks) at its batch size (the preset's train block). On one batch of random one-hot
sequences, each layer's forward and backward pass (training mode; gradients for its weights
and, after the first layer with weights, its input) is timed alone on that layer's real input,
under `SEQNN_CONV=custom` and `keras` (interleaved repeats, medians), and grouped by kind (the
class; convolutions also by kernel size, dilation and channels). For comparison, the whole
training step (`train_on_batch` of the model compiled as `seqnn train` does) under each choice,
`--steps` steps of each in alternating blocks of 5, median. The sum over layers exceeds the
whole step: each layer alone pays a call's overhead and its own loss, and the whole step's
graph fuses ops. Prints JSON; under a minute on 2 cores.
"""

import argparse
import json
import math
import statistics
import time
from collections import defaultdict

import numpy as np
from bench_kernels import kernels

from seqnn.model import cpu


def kind(layer) -> str:
    name = type(layer).__name__
    if hasattr(layer, "kernel_size") and hasattr(layer, "dilation_rate"):
        k, d = layer.kernel_size[0], layer.dilation_rate[0]
        name += f" k{k}" + (f" d{d}" if d != 1 else "") + f" {layer.input.shape[-1]}->" \
                f"{layer.filters}"
    return name


def layer_steps(model, x):
    """{layer name: (kind, a function running its forward and backward pass)}."""
    import keras
    import tensorflow as tf

    steps, trained_before = {}, False
    for layer in model.layers:  # in order: no input gradient before the first weights
        if isinstance(layer, keras.layers.InputLayer):
            continue
        structure = layer.input
        feeds = tf.nest.flatten(structure)
        values = keras.Model(model.inputs, feeds)([x], training=False)
        values = [tf.constant(v) for v in tf.nest.flatten(values)]
        steps[layer.name] = (kind(layer), _step(layer, values, structure, trained_before))
        trained_before = trained_before or bool(layer.trainable_weights)
    return steps


def _step(layer, values, structure, input_gradient):
    """A layer's forward and backward pass on `values` (the flat inputs of `structure`)."""
    import tensorflow as tf

    structure = tf.nest.map_structure(lambda _: 0, structure)  # no KerasTensors in the closure

    def run():
        with tf.GradientTape() as tape:
            floats = [v for v in values if v.dtype.is_floating] if input_gradient else []
            tape.watch(floats)
            y = layer(tf.nest.pack_sequence_as(structure, values), training=True)
            y = [t for t in tf.nest.flatten(y) if t.dtype.is_floating]
            loss = tf.add_n([tf.reduce_sum(tf.cast(t, tf.float32) ** 2) for t in y])
        return [*y, *tape.gradient(loss, [*floats, *layer.trainable_variables])]

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dilated_conv")
    parser.add_argument("--size", default="micro")
    parser.add_argument("--seq-length", type=int, default=16384)
    parser.add_argument("--pool-width", type=int, default=32)
    parser.add_argument("--tracks", type=int, default=5)
    parser.add_argument("--batch", type=int, help="default: the preset's batch size")
    parser.add_argument("--repeats", type=int, default=7, help="repeats per layer")
    parser.add_argument("--steps", type=int, default=30, help="whole steps per choice")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from seqnn.model.build import build_model
    from seqnn.model.params import target_length
    from seqnn.model.presets import resolve_model
    from seqnn.train import loop as T
    from seqnn.train import options

    data = {"seq_length": args.seq_length, "pool_width": args.pool_width, "crop_bp": 0,
            "num_targets": args.tracks}
    params = resolve_model({"preset": args.preset, "size": args.size}, data=data)
    opts = options.train_options(params)
    batch = args.batch or opts["batch_size"]
    rng = np.random.default_rng(0)
    x = np.eye(4, dtype="float32")[rng.integers(0, 4, (batch, args.seq_length))]
    y = rng.gamma(1.0, 2.0, (batch, target_length(params), args.tracks)).astype("float32")

    keras.utils.set_random_seed(0)
    model = build_model(params)
    fns, steps = {}, layer_steps(model, x)
    for choice in ("custom", "keras"):
        with kernels(choice):
            for name, (k, fn) in steps.items():
                fns[(name, choice)] = (k, tf.function(fn))
                fns[(name, choice)][1]()  # traced under `choice`
    times = defaultdict(list)
    for rep in range(args.repeats):
        for choice in (("custom", "keras") if rep % 2 == 0 else ("keras", "custom")):
            for (name, c), (_, fn) in fns.items():
                if c != choice:
                    continue
                tic = time.perf_counter()
                np.asarray(fn()[-1])
                times[(name, c)].append(time.perf_counter() - tic)
    by_kind = defaultdict(lambda: {"layers": 0, "custom_ms": 0.0, "keras_ms": 0.0})
    for (name, c), ts in times.items():
        k = fns[(name, c)][0]
        by_kind[k][f"{c}_ms"] += statistics.median(ts) * 1e3
        by_kind[k]["layers"] += c == "custom"
    total = {c: sum(v[f"{c}_ms"] for v in by_kind.values()) for c in ("custom", "keras")}
    kinds = sorted(by_kind.items(), key=lambda kv: -kv[1]["keras_ms"])
    layers = [{"kind": k, "layers": v["layers"], "custom_ms": round(v["custom_ms"], 2),
               "keras_ms": round(v["keras_ms"], 2),
               "keras_share": round(v["keras_ms"] / total["keras"], 3)} for k, v in kinds]

    models, step_times = {}, defaultdict(list)
    for choice in ("custom", "keras"):
        with kernels(choice):
            keras.utils.set_random_seed(0)
            models[choice] = T.compile_model(params, opts, args.tracks)
            models[choice].train_on_batch(x, y)  # traced here
            models[choice].train_on_batch(x, y)
    for rep in range(math.ceil(args.steps / 5)):
        for choice in (("custom", "keras") if rep % 2 == 0 else ("keras", "custom")):
            for _ in range(5):
                tic = time.perf_counter()
                models[choice].train_on_batch(x, y)
                step_times[choice].append(time.perf_counter() - tic)
    print(json.dumps({
        **cpu.describe(),
        "model": f"{args.preset} {args.size}", "seq_length": args.seq_length,
        "pool_width": args.pool_width, "tracks": args.tracks, "batch": batch,
        "params": model.count_params(), "repeats": args.repeats,
        "steps": len(step_times["custom"]),
        "train_step_ms": {c: round(statistics.median(v) * 1e3, 1)
                          for c, v in step_times.items()},
        "sum_of_layers_ms": {c: round(v, 1) for c, v in total.items()},
        "by_kind": layers,
    }, indent=2))


if __name__ == "__main__":
    main()
