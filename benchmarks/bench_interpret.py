"""Gradient-map and ISM throughput of the demo model: prints JSON figures.

    python benchmarks/bench_interpret.py [--batch-size 16] [--repeats 3] [--sequences 32]
                                         [--ism-sequences 2] [--ism-width 100] [--rc]

The demo model (config/models/demo.json, seq_length 2048, 4 tracks, seeded random weights: speed
does not depend on them) is run through `seqnn.apply.interpreter.Interpreter` on random one-hot
sequences. `gradient` times the gradient maps of every track's centre-bin aggregate
(maps = sequences x tracks), `ism` the saturation mutagenesis of the centre `--ism-width` bp
(3 substitutions per base, each a forward pass), `forward` the same compiled forward pass on as
many random sequences as ISM has substitutions (the baseline: ISM's ceiling is forward's
sequences/s; `rate_vs_forward` divides by it). Each figure is the
median of `--repeats` timed runs after one untimed run that traces the graphs.
"""

import argparse
import json
import os
import statistics
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model():
    import keras

    from seqnn.data.targets import read_sheet
    from seqnn.model.build import build_model
    from seqnn.model.presets import load_params

    keras.utils.set_random_seed(0)
    params = load_params(os.path.join(REPO, "config/models/demo.json"))
    pair = list(read_sheet(os.path.join(REPO, "config/targets.tsv")).strand_pair)
    return build_model(params, pair), pair


def timed(fn, repeats: int) -> list[float]:
    fn()  # trace
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is shown")
    parser.add_argument("--sequences", type=int, default=32, help="sequences for gradients")
    parser.add_argument("--ism-sequences", type=int, default=2)
    parser.add_argument("--ism-width", type=int, default=100, help="bp mutated per sequence")
    parser.add_argument("--rc", action="store_true", help="average over both strands too")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads")
    args = parser.parse_args()

    import numpy as np

    from seqnn.apply.interpreter import Interpreter
    from seqnn.data.dna import one_hot
    from seqnn.train.runtime import set_threads

    set_threads(args.threads)
    model, pair = make_model()
    interp = Interpreter([model], rc=args.rc, strand_pair=pair, batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    n, length = args.sequences, interp.seq_length
    x = one_hot(rng.integers(0, 4, (n, length)))
    agg = interp.aggregate(n)
    k = agg.tracks.shape[1]
    xi = x[: args.ism_sequences]
    subs = len(xi) * args.ism_width * 3

    grad_s = timed(lambda: interp.gradients(x, agg), args.repeats)
    ism_s = timed(lambda: interp.ism(xi, agg[: len(xi)], width=args.ism_width), args.repeats)
    xf = one_hot(rng.integers(0, 4, (max(n, subs), length)))  # as many passes as ISM's
    agg_f = interp.aggregate(len(xf))
    fwd_s = timed(lambda: interp.aggregates(xf, agg_f), args.repeats)
    g, f, i = (statistics.median(t) for t in (grad_s, fwd_s, ism_s))
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    results = {
        "gradient": {"maps_per_s": round(n * k / g, 2), "seqs_per_s": round(n / g, 2),
                     "tracks": k, "seconds_all": [round(t, 3) for t in grad_s]},
        "ism": {"substitutions_per_s": round(subs / i, 2), "substitutions": subs,
                "seconds_all": [round(t, 3) for t in ism_s]},
        "forward": {"seqs_per_s": round(len(xf) / f, 2), "sequences": len(xf),
                    "seconds_all": [round(t, 3) for t in fwd_s]},
        "settings": {"model": "config/models/demo.json", "seq_length": length,
                     "target_length": interp.target_length, "members": interp.members,
                     "batch_size": args.batch_size, "sequences": n,
                     "ism_sequences": len(xi), "ism_width": args.ism_width,
                     "repeats": args.repeats, "cpus": os.cpu_count(),
                     "load_avg_1min": round(os.getloadavg()[0], 2), "gpu": gpus or None},
    }
    forward = len(xf) / f
    results["gradient"]["rate_vs_forward"] = round(n / g / forward, 3)  # seqs/s over forward's
    results["ism"]["rate_vs_forward"] = round(subs / i / forward, 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
