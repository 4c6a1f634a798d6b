"""The transfer-learning proof's data and models (tests/test_transfer.py): the demo genome, a
model pretrained on its four tracks, and a new track for fine-tuning.

The new track, `chip`, is what a ChIP-seq of the demo's activator would see: narrow piles of
reads on its motifs (0.2 + 20 exp(-d^2 / (2 * 30^2)) at distance d from a motif's centre,
Poisson-drawn per base), where the demo's `peak` track is a broad response (70 bp) to the same
motif: a track the pretrained model never saw, on other chromosomes than it trained on. Run
alone, this module prints the figures of every mode as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig

from seqnn.data.bed import write_bed
from seqnn.data.coverage import write_coverage
from seqnn.data.demo import CHROMS, TRACKS, make_demo
from seqnn.data.fasta import chrom_sizes
from seqnn.data.records import statistics, write_json, write_split
from seqnn.data.splits import Splits
from seqnn.data.targets import DEFAULTS, write_sheet

SEQ, POOL = 1024, 16
CHIP_WIDTH, CHIP_HEIGHT, CHIP_BASE = 30.0, 20.0, 0.2
# windows (chrom, start, end, stride) per split: pretraining on chr1, fine-tuning on chr2/chr3
PRETRAIN = {"train": ("chr1", 1_000, 399_000, 512), "valid": ("chr1", 421_000, 749_000, 2048)}
FINETUNE = {"train": ("chr2", 1_000, 161_000, 1024), "valid": ("chr3", 2_000, 498_000, 3072)}
SPLITS = Splits(["train"], "valid")
PRETRAIN_EPOCHS, FINE_TUNE_EPOCHS = 8, 3
FINE_TUNE_LR = 0.01  # fine-tuning and the scratch baseline alike

TRUNK = [
    {"name": "conv_dna", "filters": 32, "kernel_size": 15, "pool_size": 16},
    {"name": "dilated_residual", "filters": 32, "rate_mult": 2, "repeat": 3},
    {"name": "transformer_tower", "key_size": 8, "heads": 2, "num_position_features": 8,
     "dropout": 0.05, "repeat": 1},
]
TRAIN = {"batch_size": 8, "optimizer": "adam", "learning_rate": 0.01, "warmup_steps": 20,
         "global_clipnorm": 1.0, "loss": "poisson", "patience": 10, "train_epochs_min": 1}


def params(tracks: int, transfer: dict | None = None, **train) -> dict:
    """The demo transfer model (7 convolutions, one transformer block) for `tracks` tracks."""
    p = {"train": {**TRAIN, **train}, "model": {
        "seq_length": SEQ, "augment_rc": True, "augment_shift": 3, "activation": "gelu",
        "norm_type": "batch", "bn_momentum": 0.9, "trunk": TRUNK,
        "head": {"name": "final", "units": tracks, "activation": "softplus"}}}
    if transfer is not None:
        p["transfer"] = transfer
    return p


def write_chip(demo: Path) -> Path:
    """chip.bw: the new track (module docstring) from the demo's motifs.bed."""
    motifs = pd.read_csv(demo / "motifs.bed", sep="\t")
    sites = motifs[motifs.name == "activator"]
    rng = np.random.default_rng(3)
    path = demo / "chip.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(CHROMS.items()))
    reach = int(4 * CHIP_WIDTH)
    for chrom, length in CHROMS.items():
        mean = np.full(length, CHIP_BASE)
        for start in sites[sites["#chrom"] == chrom].start:
            lo, hi = max(0, start + 5 - reach), min(length, start + 5 + reach)
            d = np.arange(lo, hi) - (start + 4.5)
            mean[lo:hi] += CHIP_HEIGHT * np.exp(-(d**2) / (2 * CHIP_WIDTH**2))
        bw.addEntries(chrom, 0, values=rng.poisson(mean).astype(np.float64).tolist(), span=1,
                      step=1)
    bw.close()
    return path


def write_data(root: Path, demo: Path, rows: list[dict], windows: dict) -> Path:
    """A data directory of `rows` (track-sheet rows) over the `windows` of each split."""
    fasta = str(demo / "genome.fa")
    beds = []
    for label, (chrom, start, end, stride) in windows.items():
        starts = np.arange(start, end - SEQ + 1, stride)
        beds.append(pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + SEQ,
                                  "label": label}))
    seqs = pd.concat(beds, ignore_index=True)
    (root / "coverage").mkdir(parents=True)
    bed = str(root / "sequences.bed")
    write_bed(seqs, bed)
    sizes = chrom_sizes(fasta)
    coverage = []
    for row in rows:
        coverage.append(str(root / "coverage" / f"{row['identifier']}.h5"))
        write_coverage(row, bed, coverage[-1], sizes, POOL)
    for label in windows:
        write_split(fasta, None, seqs, coverage, str(root / "tfrecords"), label, 256)
    write_json(statistics(seqs, list(windows), len(rows), POOL, 0), str(root / "statistics.json"))
    write_sheet(pd.DataFrame(rows), str(root / "targets.txt"))
    return root


def sheet_row(identifier: str, path: Path, strand_pair: int, description: str) -> dict:
    return {**DEFAULTS, "identifier": identifier, "file": str(path), "clip": 2048,
            "clip_soft": 512, "scale": 1.0, "sum_stat": "sum_sqrt", "strand_pair": strand_pair,
            "description": description}


def build(root: Path) -> dict:
    """The demo, its pretraining data (4 tracks, chr1) and fine-tuning data (chip, chr2/3)."""
    demo = root / "demo"
    make_demo(demo, seed=7)
    chip = write_chip(demo)
    pre_rows = [sheet_row(t.identifier, demo / t.file, t.strand_pair, t.description)
                for t in TRACKS]
    pretrain = write_data(root / "pretrain", demo, pre_rows, PRETRAIN)
    new = write_data(root / "new", demo, [sheet_row("chip", chip, 0, "activator ChIP")],
                     FINETUNE)
    return {"demo": demo, "pretrain": pretrain, "new": new}


if __name__ == "__main__":  # python tests/transfer_demo.py OUT_DIR: the figures as JSON
    from seqnn.train.loop import train

    out = Path(sys.argv[1])
    tic = time.perf_counter()
    data = build(out)
    figures = {"data_s": round(time.perf_counter() - tic, 1)}
    figures["pretrain"] = train(params(4), str(data["pretrain"]), str(out / "pre"),
                                splits=SPLITS, epochs=PRETRAIN_EPOCHS, threads=2)
    runs = {"scratch": None, "full": {"mode": "full"}, "linear": {"mode": "linear"},
            **{a: {"mode": "adapter", "adapter": a, "conv_select": 2}
               for a in ("houlsby", "lora", "lora_full", "ia3", "locon", "houlsby_se")}}
    for name, transfer in runs.items():
        restore = None if transfer is None else str(out / "pre" / "model_best.keras")
        figures[name] = train(params(1, transfer, learning_rate=FINE_TUNE_LR), str(data["new"]),
                              str(out / name), splits=SPLITS, epochs=FINE_TUNE_EPOCHS,
                              threads=2, restore=restore, trunk=restore is not None)
    print(json.dumps(figures, indent=1))
