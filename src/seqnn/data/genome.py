"""Genome: contigs split at gaps, cross-validation folds and sequence tiling.

Intervals are 0-based, half-open, as in BED. Tables are pandas DataFrames with columns
chrom, start, end (and `label`: fold0..fold{K-1}, or train/valid/test).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from seqnn import SeqnnError
from seqnn.data import dna
from seqnn.data.bed import BED_COLUMNS, read_bed, read_labelled_bed, write_bed
from seqnn.data.fasta import chrom_sizes, open_fasta

log = logging.getLogger("seqnn")


def runs(mask: np.ndarray) -> np.ndarray:
    """[n, 2] start/end of the runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _complement(length: int, cuts: np.ndarray) -> np.ndarray:
    """Intervals of [0, length) not covered by the [n, 2] intervals `cuts`."""
    if len(cuts) == 0:
        return np.array([[0, length]])
    cuts = cuts[np.argsort(cuts[:, 0], kind="stable")]
    ends = np.maximum.accumulate(cuts[:, 1])
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([cuts[:, 0], [length]])
    keep = stops > starts
    return np.stack([starts[keep], stops[keep]], axis=1)


def chosen_chroms(fasta: str, names: list[str], chroms: list[str] | None) -> list[str]:
    """The sequences of genome.chroms (`chroms`; None: all `names` of the FASTA)."""
    missing = sorted(set(chroms or []) - set(names))
    if missing:
        raise SeqnnError(f"{fasta}: genome.chroms lists {', '.join(missing)} which the FASTA "
                         f"lacks; use names from its index ({', '.join(names[:5])}…)")
    return chroms or names


def split_contigs(
    fasta: str,
    fai: str | None = None,
    chroms: list[str] | None = None,
    min_gap: int = 32,
    gaps: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Contigs: chromosomes split at runs of >= min_gap N and at the `gaps` regions."""
    rows = []
    with open_fasta(fasta, fai) as fa:
        for chrom in chosen_chroms(fasta, list(fa.references), chroms):
            codes = dna.encode(fa.fetch(chrom))
            cuts = runs(codes == dna.N_CODE)
            cuts = cuts[cuts[:, 1] - cuts[:, 0] >= min_gap]
            if gaps is not None and len(gaps):
                g = gaps[gaps.chrom == chrom][["start", "end"]].to_numpy()
                cuts = np.concatenate([cuts, np.clip(g, 0, len(codes))])
            for start, end in _complement(len(codes), cuts):
                rows.append((chrom, int(start), int(end)))
    return pd.DataFrame(rows, columns=BED_COLUMNS)


def break_contigs(contigs: pd.DataFrame, min_length: int, break_length: int | None) -> pd.DataFrame:
    """Drop contigs shorter than min_length; cut longer than break_length into equal pieces."""
    contigs = contigs[contigs.end - contigs.start >= min_length]
    if not break_length:
        return contigs.reset_index(drop=True)
    rows = []
    for chrom, start, end in contigs[BED_COLUMNS].itertuples(index=False):
        pieces = -(-(end - start) // break_length)
        bounds = np.linspace(start, end, pieces + 1).round().astype(int)
        rows += [(chrom, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    out = pd.DataFrame(rows, columns=BED_COLUMNS)
    return out[out.end - out.start >= min_length].reset_index(drop=True)


def fold_labels(folds: int) -> list[str]:
    """Split labels: fold0..fold{K-1}, or train/valid/test when folds is 0."""
    return [f"fold{k}" for k in range(folds)] if folds else ["train", "valid", "test"]


def assign_folds(
    contigs: pd.DataFrame,
    folds: int,
    seed: int,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
) -> pd.DataFrame:
    """Label contigs with folds balanced by total length (seeded greedy: longest first).

    With folds=0, label train/valid/test with about valid_frac/test_frac of the length.
    """
    rng = np.random.default_rng(seed)
    labels = np.empty(len(contigs), dtype=object)
    if folds:
        order = rng.permutation(len(contigs))
        lengths = (contigs.end - contigs.start).to_numpy()[order]
        order = order[np.argsort(-lengths, kind="stable")]
        load = np.zeros(folds)
        for i in order:
            k = int(np.argmin(load))
            labels[i] = f"fold{k}"
            load[k] += contigs.end.iat[i] - contigs.start.iat[i]
    else:
        # Basenji's percentage split: shuffled contigs fill test, then valid, then train.
        target = {"test": test_frac, "valid": valid_frac}
        total = float((contigs.end - contigs.start).sum())
        filled = dict.fromkeys(target, 0.0)
        for i in rng.permutation(len(contigs)):
            label = next((s for s in target if filled[s] < target[s] * total), "train")
            labels[i] = label
            if label != "train":
                filled[label] += contigs.end.iat[i] - contigs.start.iat[i]
    return contigs.assign(label=labels)


def tile(contigs: pd.DataFrame, seq_length: int, strides: dict[str, int]) -> pd.DataFrame:
    """Windows of seq_length along each labelled contig, with the stride of its label.

    The windows are centred in the contig (the leftover split between both ends).
    """
    parts = []
    for chrom, start, end, label in contigs[BED_COLUMNS + ["label"]].itertuples(index=False):
        stride = strides[label]
        n = (end - start - seq_length) // stride + 1
        offset = start + (end - start - seq_length - (n - 1) * stride) // 2
        starts = offset + stride * np.arange(n, dtype=np.int64)
        parts.append(pd.DataFrame(
            {"chrom": chrom, "start": starts, "end": starts + seq_length, "label": label}
        ))
    if not parts:
        return pd.DataFrame(columns=BED_COLUMNS + ["label"])
    return pd.concat(parts, ignore_index=True)


def masked_fraction(seqs: pd.DataFrame, regions: pd.DataFrame, sizes: dict[str, int]) -> np.ndarray:
    """Fraction of each sequence's bases covered by `regions` (vectorised prefix sums)."""
    frac = np.zeros(len(seqs))
    for chrom, idx in seqs.groupby("chrom", sort=False).indices.items():
        reg = regions[regions.chrom == chrom]
        if reg.empty:
            continue
        diff = np.zeros(sizes[chrom] + 1, dtype=np.int32)
        np.add.at(diff, np.clip(reg.start.to_numpy(), 0, sizes[chrom]), 1)
        np.add.at(diff, np.clip(reg.end.to_numpy(), 0, sizes[chrom]), -1)
        covered = np.concatenate([[0], np.cumsum(np.cumsum(diff[:-1]) > 0)])
        s, e = seqs.start.to_numpy()[idx], seqs.end.to_numpy()[idx]
        frac[idx] = (covered[e] - covered[s]) / (e - s)
    return frac


def _genome_order(df: pd.DataFrame, chroms: list[str], by_label: list[str] | None = None):
    keys = {"chrom": lambda c: c.map({n: i for i, n in enumerate(chroms)})}
    if by_label:
        keys["label"] = lambda c: c.map({n: i for i, n in enumerate(by_label)})
    cols = (["label"] if by_label else []) + ["chrom", "start"]
    return df.sort_values(cols, key=lambda c: keys.get(c.name, lambda x: x)(c),
                          kind="stable").reset_index(drop=True)


def write_contigs(
    fasta: str,
    out: str,
    seq_length: int,
    folds: int,
    seed: int,
    fai: str | None = None,
    chroms: list[str] | None = None,
    min_gap: int = 32,
    break_length: int | None = None,
    gaps: str | None = None,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
) -> pd.DataFrame:
    """contigs.bed: contigs of at least seq_length bp, labelled with balanced folds.

    Args:
        fasta: the genome FASTA.
        out: the BED to write (chrom, start, end, label).
        seq_length: contigs shorter than this are dropped.
        folds: K folds (0: train/valid/test by `valid_frac` and `test_frac`).
        seed: seed of the fold assignment's tie-breaking shuffle.
        fai: the FASTA's index (default: FASTA.fai).
        chroms: sequences to use (default: all).
        min_gap: runs of at least this many N split contigs.
        break_length: contigs longer than this are cut into equal pieces.
        gaps: BED of assembly gaps, split like N runs.
        valid_frac: fraction of the genome for `valid` when `folds` is 0.
        test_frac: fraction of the genome for `test` when `folds` is 0.
    """
    contigs = split_contigs(fasta, fai, chroms, min_gap, read_bed(gaps))
    contigs = break_contigs(contigs, seq_length, break_length)
    if contigs.empty:
        raise SeqnnError(f"{fasta}: no contig of at least seq_length={seq_length} bp between N "
                         "runs and gaps; lower data.seq_length or raise data.min_gap")
    if folds and len(contigs) < folds:
        raise SeqnnError(f"{fasta}: {len(contigs)} contig(s) for {folds} folds; lower data.folds "
                         "or data.break_length")
    contigs = assign_folds(contigs, folds, seed, valid_frac, test_frac)
    contigs = _genome_order(contigs, list(chrom_sizes(fasta, fai)))
    write_bed(contigs, out)
    return contigs


def write_sequences(
    contigs_bed: str,
    out: str,
    seq_length: int,
    folds: int,
    stride_train: int,
    stride_test: int,
    sizes: dict[str, int],
    unmappable: str | None = None,
    unmappable_max_frac: float = 0.3,
) -> pd.DataFrame:
    """sequences.bed: windows tiled along the contigs, grouped by label, in genome order.

    Folds are tiled with stride_train (each fold trains K-2 models, as in Basenji); valid and
    test of a train/valid/test split (folds: 0) with stride_test. Windows with more than
    unmappable_max_frac of their bases in `unmappable` regions are dropped.
    """
    labels = fold_labels(folds)
    strides = {lab: stride_test if lab in ("valid", "test") else stride_train for lab in labels}
    seqs = tile(read_labelled_bed(contigs_bed), seq_length, strides)
    if unmappable:
        seqs = seqs[masked_fraction(seqs, read_bed(unmappable), sizes) <= unmappable_max_frac]
    counts = seqs.label.value_counts()
    empty = [lab for lab in labels if counts.get(lab, 0) == 0]
    if empty:
        fix = ("use fewer data.folds, a smaller data.break_length or data.stride_train" if folds
               else "adjust data.valid_frac / data.test_frac or lower data.break_length")
        if unmappable:
            fix += ", or raise data.unmappable_max_frac"
        raise SeqnnError(f"{contigs_bed}: {', '.join(empty)} got no sequence; {fix}")
    seqs = _genome_order(seqs, list(sizes), by_label=labels)
    write_bed(seqs, out)
    return seqs
