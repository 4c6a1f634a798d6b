"""Poly(dA:dT) runs in a trained yeast model's MNase gradient maps: prints JSON figures.

    python benchmarks/interpret_yeast.py RESULTS_DIR [--fold 0] [--min-run 8] [--regions 40]

RESULTS_DIR is a workflow run on config/yeast (results/models/f{k}/model_best.keras and
results/data/sequences.bed). Windows of the fold-k test sequences (the model never trained on
them) get gradient maps of the MNase prediction summed over all bins, averaged over both
strands; per base, input x gradient. Bases in runs of at least `--min-run` A or T (poly(dA:dT),
which resists nucleosome wrapping) are compared with all other bases: mean contribution of
each, the fraction of runs whose summed contribution is negative, and the AUROC of -contribution
separating run bases from the rest (0.5: no signal; 1: every run base below every other).
"""

import argparse
import json
import os
import tempfile

import h5py
import numpy as np
from scipy.stats import mannwhitneyu

YEAST_FASTA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                           "shared", "data", "yeast", "yeast_II_IV_XVI.fa")


def runs(codes: np.ndarray, min_run: int) -> list[tuple[int, int]]:
    """[start, end) of maximal runs of A (0) or of T (3) of at least `min_run` bases."""
    out = []
    for base in (0, 3):
        hit = np.concatenate([[False], codes == base, [False]])
        edges = np.flatnonzero(np.diff(hit.astype(np.int8))).reshape(-1, 2)
        out += [(a, b) for a, b in edges.tolist() if b - a >= min_run]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results/ of a config/yeast workflow run")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--min-run", type=int, default=8)
    parser.add_argument("--regions", type=int, default=40, help="test windows interpreted")
    parser.add_argument("--fasta", default=YEAST_FASTA)
    args = parser.parse_args()

    from seqnn.apply.attribution import input_x_gradient
    from seqnn.apply.interpret import gradient_maps

    model = os.path.join(args.results, f"models/f{args.fold}/model_best.keras")
    with open(os.path.join(args.results, "data/statistics.json")) as f:
        bins = json.load(f)["target_length"]
    seqs = [line.split("\t") for line in open(os.path.join(args.results, "data/sequences.bed"))]
    test = [s for s in seqs if s[3].strip() == f"fold{args.fold}"][: args.regions]
    with tempfile.TemporaryDirectory() as tmp:
        bed = os.path.join(tmp, "windows.bed")
        with open(bed, "w") as f:
            f.writelines(f"{c}\t{a}\t{b}\n" for c, a, b, _ in test)
        h5 = os.path.join(tmp, "grads.h5")
        summary = gradient_maps([model], args.fasta, bed, h5, fai=args.fasta + ".fai",
                                tracks=["MNase"], window=bins, rc=True, dtype="float32")
        with h5py.File(h5) as f:
            x, g = f["seqs"][:].astype(np.float32), f["grads"][:]
    contrib = input_x_gradient(x, g)[..., 0]  # [N, L]
    codes = np.where(x.sum(-1) > 0, x.argmax(-1), 4)
    in_run = np.zeros(codes.shape, bool)
    run_sums = []
    for i, row in enumerate(codes):
        for a, b in runs(row, args.min_run):
            in_run[i, a:b] = True
            run_sums.append(contrib[i, a:b].sum())
    valid = codes < 4
    pos, neg = -contrib[in_run & valid], -contrib[~in_run & valid]
    auroc = mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
    print(json.dumps({
        "model": model, "windows": len(test), "seq_length": int(codes.shape[1]),
        "min_run": args.min_run, "runs": len(run_sums), "run_bases": int(in_run.sum()),
        "mean_contribution_run_bases": float(contrib[in_run & valid].mean()),
        "mean_contribution_other_bases": float(contrib[~in_run & valid].mean()),
        "fraction_runs_negative": round(float(np.mean(np.array(run_sums) < 0)), 3),
        "auroc_negative_contribution": round(float(auroc), 3),
        "gradient_seconds": summary["seconds"],
    }, indent=2))


if __name__ == "__main__":
    main()
