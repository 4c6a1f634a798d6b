"""Shared fixtures and builders.

`tiny_genome`: a three-chromosome FASTA (7.5 kb), a bigWig track `a` with a known ramp, a track
sheet and a workflow config, all in tmp_path with paths relative to it (a snakemake workdir).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
import yaml
from helpers import YEAST

TINY_SIZES = {"chrI": 3000, "chrII": 2500, "chrIII": 2000}
TINY_DATA = {"seq_length": 512, "pool_width": 16, "crop_bp": 0, "folds": 3, "stride_train": 256,
             "stride_test": 512, "break_length": None, "seqs_per_tfr": 4, "seed": 1}
TINY_MODEL = {"preset": "conv", "size": "micro"}  # takes its lengths from the data


def tiny_values(length: int) -> np.ndarray:
    """The default track: a 0..9 ramp repeating along the chromosome."""
    return (np.arange(length) % 10).astype(np.float64)


def write_tiny_fasta(path: Path, sizes: dict[str, int] = TINY_SIZES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        for chrom, length in sizes.items():
            seq = "".join(rng.choice(list("ACGT"), length))
            f.write(f">{chrom}\n" + "\n".join(seq[i : i + 60] for i in range(0, length, 60)) + "\n")
    return path


def write_tiny_bigwig(path: Path, sizes: dict[str, int] = TINY_SIZES,
                      values: dict[str, np.ndarray] | None = None) -> Path:
    """A bigWig with base-level values per chromosome (default `tiny_values`); NaN is stored."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, length in sizes.items():
        v = tiny_values(length) if values is None or chrom not in values else values[chrom]
        bw.addEntries(chrom, 0, values=np.asarray(v, dtype=np.float64), span=1, step=1)
    bw.close()
    return path


def write_tiny_sheet(path: Path, rows: list[dict]) -> Path:
    """A Basenji-style sheet (index column first); rows need identifier and file."""
    lines = ["\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription"]
    for i, r in enumerate(rows):
        lines.append(f"{i}\t{r['identifier']}\t{r['file']}\t\t\t{r.get('scale', 1.0)}\t"
                     f"{r.get('sum_stat', 'sum')}\t{r.get('strand_pair', i)}\t")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_tiny_config(path: Path, fasta: str, targets: str, genome: dict | None = None,
                      **data) -> Path:
    config = {"demo": False, "genome": {"fasta": fasta, **(genome or {})}, "targets": targets,
              "data": {**TINY_DATA, **data},
              # a model at the data's geometry (the default, the demo's config/models/demo.json,
              # is found in the workflow's folder and wants 2,048 bp windows)
              "model": TINY_MODEL,
              # the demo's motifs.bed does not exist here
              "evaluate": {"tss": None}, "predict": {"tss_bed": None}}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclasses.dataclass
class TinyGenome:
    dir: Path
    fasta: Path
    track: Path
    sheet: Path
    config: Path
    sizes: dict[str, int] = dataclasses.field(default_factory=lambda: dict(TINY_SIZES))


@pytest.fixture
def tiny_genome(tmp_path) -> TinyGenome:
    (tmp_path / "tracks").mkdir()
    fasta = write_tiny_fasta(tmp_path / "genome.fa")
    track = write_tiny_bigwig(tmp_path / "tracks" / "a.bw")
    sheet = write_tiny_sheet(tmp_path / "targets.tsv",
                             [{"identifier": "a", "file": "tracks/a.bw"}])
    config = write_tiny_config(tmp_path / "config.yaml", "genome.fa", "targets.tsv")
    return TinyGenome(tmp_path, fasta, track, sheet, config)


@pytest.fixture(scope="session")
def yeast_dir():
    if not (YEAST / "yeast_II_IV_XVI.fa").is_file():
        pytest.skip(f"real yeast data not found at {YEAST} (it lives beside the project)")
    return YEAST
