"""Track selection speed: predict seconds with all tracks of a wide head vs 10 of them.

    python benchmarks/bench_tracks.py [--tracks 5313] [--genome-kb 400] [--repeats 2]

A Basenji2-like model (the basenji_mini reference architecture of ../shared/data/pretrained:
conv_dna, conv tower, dilated residuals, crop, a 1,536-channel conv_block, a `final` head of
Basenji2's 5,313 human tracks; 4,096 bp in, 112 bins of 32 bp) with seeded random weights
predicts a random genome with `seqnn.apply.predict.predict_shard` (tiling, streaming,
stitching, the HDF5 shard), once with every track and once with `tracks` = 10 of them (the
head's Dense kernel cut to 10 columns, `seqnn.model.select`). Prints JSON: seconds of each
(the best of `repeats`, in one process after a warm-up), the parameters of both heads and the
ratio all / 10.
"""

import argparse
import json
import os
import tempfile

import numpy as np

HEAD_CHANNELS = 1536  # Basenji2's last conv_block


def params(tracks: int) -> dict:
    trunk = [
        {"name": "conv_dna", "filters": 96, "kernel_size": 11, "pool_size": 2},
        {"name": "conv_tower", "filters_init": 128, "filters_mult": 1.25, "kernel_size": 5,
         "pool_size": 2, "repeat": 4},
        {"name": "dilated_residual", "filters": 64, "rate_mult": 2, "repeat": 3},
        {"name": "Cropping1D", "cropping": 8},
        {"name": "conv_block", "filters": HEAD_CHANNELS, "kernel_size": 1},
    ]
    return {"model": {"seq_length": 4096, "activation": "gelu", "norm_type": "batch",
                      "trunk": trunk,
                      "head": {"name": "final", "units": tracks, "activation": "softplus"}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=5313)
    parser.add_argument("--genome-kb", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import keras

    from seqnn.apply.predict import predict_shard
    from seqnn.model.build import build_model, save_model
    from seqnn.model.params import target_length

    keras.utils.set_random_seed(0)
    p = params(args.tracks)
    rows = [{"identifier": f"t{i}", "file": "", "strand_pair": i, "sum_stat": "sum"}
            for i in range(args.tracks)]
    chosen = [f"t{i}" for i in range(0, args.tracks, args.tracks // 10)][:10]
    with tempfile.TemporaryDirectory() as tmp:
        model_path, fasta = os.path.join(tmp, "wide.keras"), os.path.join(tmp, "genome.fa")
        bins = target_length(p)
        stats = {"seq_length": 4096, "pool_width": 32, "crop_bp": (4096 - 32 * bins) // 2,
                 "target_length": bins, "num_targets": args.tracks}
        save_model(build_model(p), model_path, params=p, targets=rows, statistics=stats)
        seq = np.random.default_rng(0).choice(list("ACGT"), args.genome_kb * 1000)
        with open(fasta, "w") as f:
            f.write(">chr1\n" + "\n".join("".join(seq[i : i + 80])
                                          for i in range(0, len(seq), 80)) + "\n")

        def run(tracks) -> float:
            out = os.path.join(tmp, "shard.h5")
            summary = predict_shard([model_path], fasta, out, tracks=tracks,
                                    threads=args.threads, batch_size=8, untransform=False)
            os.remove(out)
            return summary["seconds"], summary["windows"]

        run(chosen)  # warm-up: TensorFlow's first graph
        seconds = {"all": [], "10": []}
        for _ in range(args.repeats):
            seconds["all"].append(run(None)[0])
            seconds["10"].append(run(chosen)[0])
        windows = run(chosen)[1]
    best = {k: min(v) for k, v in seconds.items()}
    print(json.dumps({
        "tracks": args.tracks, "selected": len(chosen), "genome_bp": args.genome_kb * 1000,
        "windows": windows, "threads": args.threads,
        "head_params_all": (HEAD_CHANNELS + 1) * args.tracks,
        "head_params_10": (HEAD_CHANNELS + 1) * len(chosen),
        "seconds_all": best["all"], "seconds_10": best["10"],
        "ratio_all_over_10": round(best["all"] / best["10"], 2),
    }))


if __name__ == "__main__":
    main()
