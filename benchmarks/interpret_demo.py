"""Motif recovery by gradient maps on the demo: the figures behind tests/test_interpret_demo.py.

    python benchmarks/interpret_demo.py [--root DIR] [--epochs 5] [--seed 0] [--sites 30] [--ism]

Builds the demo and its data directory in DIR (kept: a second run reuses them), trains the
test's model for `--epochs` epochs with train seed `--seed` (into DIR/model-e{epochs}-s{seed},
reused when present), runs gradient maps (rc) over `--sites` held-out planted motifs per kind,
and over regions.bed's, and prints JSON: stage seconds, the training summary, per motif kind the
AUROC of |input x gradient| (motif bases vs background) and the sign fraction, and with --ism the
ISM/gradient sign agreement.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "interpret_demo"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--sites", type=int, default=None, help="held-out motifs per kind")
    parser.add_argument("--ism", action="store_true", help="also the ISM/gradient check")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import test_interpret_demo as T

    from seqnn.apply import interpret as I
    from seqnn.apply.motifs import demo_recovery

    epochs = T.EPOCHS if args.epochs is None else args.epochs
    seed = T.TRAIN_SEED if args.seed is None else args.seed
    sites_n = args.sites or T.SITES_PER_MOTIF
    root = Path(args.root)
    out = {}
    if not (root / "results/data/statistics.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        paths = T.build_data(root)
        out.update(demo_s=paths["demo_s"], data_s=paths["data_s"])
    demo, data = root / "resources/demo", root / "results/data"
    fasta, fai = str(demo / "genome.fa"), str(demo / "genome.fa.fai")
    model_dir = root / f"model-e{epochs}-s{seed}"
    if not (model_dir / "model_best.keras").exists():
        tic = time.perf_counter()
        out["training"] = T.train_model(data, model_dir, epochs, seed)
        out["train_s"] = round(time.perf_counter() - tic, 1)
    model = str(model_dir / "model_best.keras")
    sites = T.held_out_sites(demo, data, sites_n, T.PARAMS["model"]["seq_length"])
    bed = model_dir / f"sites{sites_n}.bed"
    sites.to_csv(bed, sep="\t", header=False, index=False)
    for name, regions in (("held_out", bed), ("regions", demo / "regions.bed")):
        h5 = str(model_dir / f"gradients_{name}{sites_n if name == 'held_out' else ''}.h5")
        tic = time.perf_counter()
        I.gradient_maps([model], fasta, str(regions), h5, fai=fai, rc=True, batch_size=16,
                        threads=2)
        out[f"gradients_{name}_s"] = round(time.perf_counter() - tic, 1)
        out[f"scores_{name}"] = demo_recovery(h5, str(demo / "motifs.bed"))
    if args.ism:
        tic = time.perf_counter()
        out["ism_agreement"] = T.ism_agreement(model, sites, fasta, fai)
        out["ism_s"] = round(time.perf_counter() - tic, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
