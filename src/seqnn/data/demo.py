"""Synthetic demo dataset: a random genome with planted motifs and coverage tracks they explain.

`make_demo(out_dir, seed)` writes, deterministically for a seed (same seed, byte-identical files):

- ``genome.fa`` (+ ``.fai``): chr1, chr2, chr3 (`CHROMS`), i.i.d. bases at 40% GC, N runs at `GAPS`.
- ``peak.bw``, ``nuc.bw``, ``rna.fwd.bw``, ``rna.rev.bw`` (`TRACKS`): base-level Poisson counts
  (fixed-step entries, 1 bp each), no entries over N (readers see NaN there).
- ``motifs.bed``: every motif occurrence the signal was computed from (BED6 + ``planted``).
- ``regions.bed``: `REGIONS_PER_MOTIF` planted occurrences of each motif, spread along the genome
  (BED6, the rows of motifs.bed): where the workflow's gradient maps and ISM look.
- ``variants.vcf``: one SNV in the middle of each of those motifs (ID ``<motif>_<i>``, breaking
  it) and as many at random positions at least 300 bp from any motif (ID ``background_<i>``).

Each motif in `MOTIFS` is planted in about one 1.6 kb slot in three (about once per 4.8 kb), in a
random orientation, at least `GAP_MARGIN` bp from N and never overlapping another planted motif.
The expected signal is computed from *all* exact occurrences in the final sequence, on both
strands, planted or by chance, so the sequence alone determines it (x: position, s: occurrence
start, c = s + 4.5 its centre, k = 10 the motif length):

- ``peak``: 0.5 + sum over activators of 15 exp(-(x - c)^2 / (2 * 70^2)), |x - c| < 300.
- ``nuc``: 10 exp(4 (gc(x) - 0.4)), gc the GC fraction of the 147 bp around x, times
  max(0.03, 1 - sum over repressors of w(|x - c|)), w = 1 up to 150 bp, cosine taper to 0 at 200.
- ``rna.fwd``: 0.2 + sum over promoters on + of 20 exp(-(x - s - k) / 500) for
  s + k <= x < s + k + 3000 (downstream, to the right); promoters on - do not touch it.
- ``rna.rev``: the mirror image: 0.2 + sum over promoters on - (the reverse complement read on
  +) of 20 exp(-(s - 1 - x) / 500), s - 3000 <= x < s (to the left).

Each base's value is then a Poisson draw from its expected signal.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyBigWig
import pysam

CHROMS = {"chr1": 1_000_000, "chr2": 700_000, "chr3": 500_000}
GAPS = [
    ("chr1", 400_000, 420_000),
    ("chr1", 750_000, 750_080),
    ("chr2", 300_000, 305_000),
    ("chr3", 0, 1_000),
]
MOTIFS = {"activator": "TGACGCATCA", "repressor": "CCAATGGCGT", "promoter": "TATAAAGGCA"}
EFFECT = {"activator": 1, "repressor": -1, "promoter": 1}
GAP_MARGIN = 500
REGIONS_PER_MOTIF = 8


class Track(NamedTuple):
    """A demo coverage track as in a targets sheet row."""

    identifier: str
    file: str
    strand_pair: int
    description: str


TRACKS = [
    Track("peak", "peak.bw", 0, "peaks raised around activator motifs"),
    Track("nuc", "nuc.bw", 1, "broad GC-dependent coverage cleared around repressor motifs"),
    Track("rna_fwd", "rna.fwd.bw", 3, "+ strand RNA downstream of promoter motifs on +"),
    Track("rna_rev", "rna.rev.bw", 2, "- strand RNA upstream of promoter motifs on -"),
]


def motif_track(kind: str, strand: str) -> str:
    """The track a motif kind acts on: peak, nuc, or the promoter's own strand's RNA."""
    return {"activator": "peak", "repressor": "nuc"}.get(
        kind, "rna_fwd" if strand == "+" else "rna_rev")


_BASES = np.frombuffer(b"ACGTN", np.uint8)
_SLOT = 1600
_K = 10


def _encode(seq: str) -> np.ndarray:
    return np.searchsorted(_BASES[:4], np.frombuffer(seq.encode(), np.uint8)).astype(np.uint8)


def _revcomp(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGT", "TGCA"))


def _kmer_codes(codes: np.ndarray) -> np.ndarray:
    """Base-4 code of the k-mer starting at each position; -1 where it holds an N."""
    n = len(codes) - _K + 1
    kmer = np.zeros(n, np.int64)
    has_n = np.zeros(n, bool)
    for i in range(_K):
        window = codes[i : i + n]
        kmer = kmer * 4 + np.minimum(window, 3)
        has_n |= window == 4
    kmer[has_n] = -1
    return kmer


def _motif_code(seq: str) -> int:
    return int(_encode(seq).astype(np.int64) @ 4 ** np.arange(_K - 1, -1, -1))


def _plant(rng: np.random.Generator, codes: np.ndarray) -> set[tuple[int, str, str]]:
    """Write motifs into `codes` in place; return the planted (start, name, strand)."""
    n = len(codes) // _SLOT
    kind = rng.integers(len(MOTIFS), size=n)
    minus = rng.integers(2, size=n)
    starts = np.arange(n) * _SLOT + rng.integers(100, _SLOT - 100 - _K, size=n)
    n_cum = np.concatenate([[0], np.cumsum(codes == 4)])
    lo = np.maximum(starts - GAP_MARGIN, 0)
    hi = np.minimum(starts + _K + GAP_MARGIN, len(codes))
    ok = n_cum[hi] == n_cum[lo]
    kind, minus, starts = kind[ok], minus[ok], starts[ok]
    seqs = [[_encode(m), _encode(_revcomp(m))] for m in MOTIFS.values()]
    codes[starts[:, None] + np.arange(_K)] = np.array(seqs)[kind, minus]
    names = list(MOTIFS)
    return {(s, names[k], "+-"[m]) for s, k, m in zip(starts.tolist(), kind, minus, strict=True)}


def _occurrences(codes: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """Start positions of every exact occurrence, keyed by (motif name, strand)."""
    kmer = _kmer_codes(codes)
    return {
        (name, strand): np.flatnonzero(kmer == _motif_code(seq if strand == "+" else _revcomp(seq)))
        for name, seq in MOTIFS.items()
        for strand in "+-"
    }


def _stamp(length: int, starts: np.ndarray, offsets: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Sum of `kernel` (at `offsets` from each start) over all starts, clipped to the sequence."""
    pos = (starts[:, None] + offsets[None, :]).ravel()
    weights = np.broadcast_to(kernel, (len(starts), len(kernel))).ravel()
    keep = (pos >= 0) & (pos < length)
    return np.bincount(pos[keep], weights=weights[keep], minlength=length)


def _expected(codes: np.ndarray, occ: dict[tuple[str, str], np.ndarray]) -> list[np.ndarray]:
    """Expected per-base signal of each track in `TRACKS` order."""
    length = len(codes)
    centre = (_K - 1) / 2

    def both(name: str) -> np.ndarray:
        return np.concatenate([occ[name, "+"], occ[name, "-"]])

    d = np.arange(-295, 305)
    peak = 0.5 + _stamp(length, both("activator"), d, 15 * np.exp(-((d - centre) ** 2) / 9800))

    taper = np.clip((np.abs(d - centre) - 150) / 50, 0, 1)
    cleared = _stamp(length, both("repressor"), d, 0.5 + 0.5 * np.cos(np.pi * taper))
    acgt = codes < 4
    gc_cum = np.concatenate([[0], np.cumsum((codes == 1) | (codes == 2))])
    acgt_cum = np.concatenate([[0], np.cumsum(acgt)])
    lo = np.clip(np.arange(length) - 73, 0, length)
    hi = np.clip(np.arange(length) + 74, 0, length)
    gc = (gc_cum[hi] - gc_cum[lo]) / np.maximum(acgt_cum[hi] - acgt_cum[lo], 1)
    nuc = 10 * np.exp(4 * (gc - 0.4)) * np.maximum(0.03, 1 - cleared)

    t = np.arange(3000)
    decay = 20 * np.exp(-t / 500)
    fwd = 0.2 + _stamp(length, occ["promoter", "+"], _K + t, decay)
    rev = 0.2 + _stamp(length, occ["promoter", "-"], -1 - t, decay)
    return [peak, nuc, fwd, rev]


def _add_blocks(bw, chrom: str, values: np.ndarray, valid: np.ndarray) -> None:
    """Add `values` to `bw` base by base over each stretch where `valid` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], valid, [False]])))
    for start, end in edges.reshape(-1, 2).tolist():
        bw.addEntries(chrom, start, values=values[start:end], span=1, step=1)


def _regions(bed_rows: list[tuple]) -> list[tuple]:
    """`REGIONS_PER_MOTIF` planted rows of each motif, evenly spaced in genome order."""
    chosen = []
    for name in MOTIFS:
        rows = [r for r in bed_rows if r[2] == name and r[4]]
        step = len(rows) // REGIONS_PER_MOTIF
        chosen += rows[step // 2 :: step][:REGIONS_PER_MOTIF]
    order = {chrom: i for i, chrom in enumerate(CHROMS)}
    return sorted(chosen, key=lambda r: (order[r[0]], r[1]))


def _write_vcf(path: Path, genome: dict[str, np.ndarray], regions: list[tuple],
               bed_rows: list[tuple], rng: np.random.Generator) -> None:
    """SNVs breaking the motifs of `regions`, and as many far from every motif."""
    counts = {name: 0 for name in MOTIFS}
    records = []
    for chrom, s, name, _, _ in regions:
        records.append((chrom, s + _K // 2, f"{name}_{counts[name]}"))
        counts[name] += 1
    near = {chrom: np.zeros(len(codes), bool) for chrom, codes in genome.items()}
    for chrom, s, *_ in bed_rows:
        near[chrom][max(s - 300, 0) : s + _K + 300] = True
    chroms = list(CHROMS)
    while len(records) < 2 * len(regions):
        chrom = chroms[rng.integers(len(chroms))]
        pos = int(rng.integers(CHROMS[chrom]))
        if genome[chrom][pos] < 4 and not near[chrom][pos]:
            near[chrom][pos] = True
            records.append((chrom, pos, f"background_{len(records) - len(regions)}"))
    order = {chrom: i for i, chrom in enumerate(CHROMS)}
    with open(path, "w") as vcf:
        vcf.write("##fileformat=VCFv4.2\n")
        vcf.writelines(f"##contig=<ID={c},length={n}>\n" for c, n in CHROMS.items())
        vcf.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for chrom, pos, name in sorted(records, key=lambda r: (order[r[0]], r[1])):
            ref = int(genome[chrom][pos])
            alt = (ref + 1 + int(rng.integers(3))) % 4
            vcf.write(f"{chrom}\t{pos + 1}\t{name}\t{'ACGT'[ref]}\t{'ACGT'[alt]}\t.\t.\t.\n")


def make_demo(out_dir: str | os.PathLike, seed: int = 7) -> dict:
    """Write the demo genome, tracks and motif table into `out_dir`; return a summary.

    Files are written in a temporary folder inside `out_dir` and moved in at the end. The
    summary holds ``genome_length``, ``n_length`` (bases in N runs) and, per motif name,
    ``{"planted": int, "chance": int}`` occurrence counts.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".demo-"))
    try:
        bws = [pyBigWig.open(str(tmp / t.file), "w") for t in TRACKS]
        for bw in bws:
            bw.addHeader(list(CHROMS.items()))
        counts = {name: {"planted": 0, "chance": 0} for name in MOTIFS}
        bed_rows, genome = [], {}
        with open(tmp / "genome.fa", "wb") as fasta:
            for chrom, length in CHROMS.items():
                codes = rng.choice(4, size=length, p=[0.3, 0.2, 0.2, 0.3]).astype(np.uint8)
                for gap_chrom, start, end in GAPS:
                    if gap_chrom == chrom:
                        codes[start:end] = 4
                planted = _plant(rng, codes)
                occ = _occurrences(codes)
                for (name, strand), starts in occ.items():
                    for s in starts.tolist():
                        flag = int((s, name, strand) in planted)
                        counts[name]["planted" if flag else "chance"] += 1
                        bed_rows.append((chrom, s, name, strand, flag))
                genome[chrom] = codes
                valid = codes < 4
                for bw, mean in zip(bws, _expected(codes, occ), strict=True):
                    _add_blocks(bw, chrom, rng.poisson(mean).astype(np.float64), valid)
                text = _BASES[codes].tobytes()
                fasta.write(f">{chrom}\n".encode())
                fasta.writelines(text[i : i + 60] + b"\n" for i in range(0, length, 60))
        for bw in bws:
            bw.close()
        pysam.faidx(str(tmp / "genome.fa"))
        order = {chrom: i for i, chrom in enumerate(CHROMS)}
        bed_rows.sort(key=lambda r: (order[r[0]], r[1], r[2], r[3]))
        with open(tmp / "motifs.bed", "w") as bed:
            bed.write("#chrom\tstart\tend\tname\tscore\tstrand\tplanted\n")
            for chrom, s, name, strand, flag in bed_rows:
                bed.write(f"{chrom}\t{s}\t{s + _K}\t{name}\t{EFFECT[name]}\t{strand}\t{flag}\n")
        regions = _regions(bed_rows)
        with open(tmp / "regions.bed", "w") as bed:
            for chrom, s, name, strand, _ in regions:
                bed.write(f"{chrom}\t{s}\t{s + _K}\t{name}\t{EFFECT[name]}\t{strand}\n")
        _write_vcf(tmp / "variants.vcf", genome, regions, bed_rows,
                   np.random.default_rng([seed, 1]))
        for path in tmp.iterdir():
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "genome_length": sum(CHROMS.values()),
        "n_length": sum(end - start for _, start, end in GAPS),
        "motifs": counts,
    }
