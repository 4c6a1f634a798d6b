"""Contigs, folds, tiling and DNA codes against brute-force references."""

import numpy as np
import pandas as pd
import pytest

from seqnn.data import bed, dna, genome
from seqnn.data.fasta import chrom_sizes


def test_dna_codes_one_hot_and_reverse_complement():
    codes = dna.encode("ACGTNacgtRn")
    np.testing.assert_array_equal(codes, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4])
    oh = dna.one_hot(codes)
    assert oh.shape == (11, 4) and oh[4].sum() == 0 and oh[10].sum() == 0
    np.testing.assert_array_equal(oh.argmax(1)[:4], [0, 1, 2, 3])
    assert dna.decode(dna.reverse_complement(dna.encode("AACGTN"))) == "NACGTT"


@pytest.fixture
def fasta(tmp_path):
    rng = np.random.default_rng(1)
    seq1 = list(rng.choice(list("ACGT"), 1000))
    seq1[100:150] = "N" * 50  # a long run: split
    seq1[500:510] = "N" * 10  # short run: kept inside a contig
    seq2 = "N" * 20 + "".join(rng.choice(list("acgt"), 300))
    path = tmp_path / "g.fa"
    path.write_text(f">a\n{''.join(seq1)}\n>b\n{seq2}\n")
    return str(path)


def test_split_contigs_at_n_runs_and_gaps(fasta):
    contigs = genome.split_contigs(fasta, min_gap=32)
    assert contigs.values.tolist() == [["a", 0, 100], ["a", 150, 1000], ["b", 0, 320]]
    # b starts with only 20 N (< min_gap): kept. min_gap 5 splits the 10-N and 20-N runs too
    contigs = genome.split_contigs(fasta, min_gap=5)
    assert contigs.values.tolist() == [["a", 0, 100], ["a", 150, 500], ["a", 510, 1000],
                                       ["b", 20, 320]]
    gaps = pd.DataFrame({"chrom": ["a", "a"], "start": [700, 750], "end": [800, 760]})
    contigs = genome.split_contigs(fasta, min_gap=32, gaps=gaps)
    assert contigs.values.tolist() == [["a", 0, 100], ["a", 150, 700], ["a", 800, 1000],
                                       ["b", 0, 320]]


def test_break_contigs():
    contigs = pd.DataFrame({"chrom": ["a", "b", "c"], "start": [0, 10, 0], "end": [1000, 60, 250]})
    out = genome.break_contigs(contigs, min_length=100, break_length=300)
    assert (out.chrom == "b").sum() == 0  # shorter than min_length: dropped
    a = out[out.chrom == "a"]
    assert len(a) == 4 and a.start.iloc[0] == 0 and a.end.iloc[-1] == 1000
    assert ((a.end - a.start) <= 300).all()
    assert (a.start.iloc[1:].values == a.end.iloc[:-1].values).all()


def test_assign_folds_balanced_and_seeded():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1000, 50_000, 40)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    contigs = pd.DataFrame({"chrom": "c", "start": starts, "end": starts + lengths})
    a = genome.assign_folds(contigs, 5, seed=1)
    totals = (a.end - a.start).groupby(a.label).sum()
    assert sorted(totals.index) == [f"fold{k}" for k in range(5)]
    assert totals.max() - totals.min() <= lengths.max()
    assert a.label.tolist() == genome.assign_folds(contigs, 5, seed=1).label.tolist()
    split = genome.assign_folds(contigs, 0, seed=1, valid_frac=0.2, test_frac=0.1)
    share = (split.end - split.start).groupby(split.label).sum() / lengths.sum()
    assert set(split.label) == {"train", "valid", "test"}
    assert abs(share["valid"] - 0.2) < 0.1 and abs(share["test"] - 0.1) < 0.1


def test_tile_centred_with_label_strides():
    contigs = pd.DataFrame({"chrom": ["a", "a"], "start": [0, 2000], "end": [1050, 3000],
                            "label": ["train", "test"]})
    seqs = genome.tile(contigs, 200, {"train": 100, "test": 400})
    train = seqs[seqs.label == "train"]
    # (1050 - 200) // 100 + 1 = 9 windows, leftover 50 split 25 / 25
    assert train.start.tolist() == list(range(25, 25 + 900, 100))
    test = seqs[seqs.label == "test"]
    assert test.start.tolist() == [2000, 2400, 2800]  # (1000 - 200) // 400 + 1 = 3, no leftover
    assert ((seqs.end - seqs.start) == 200).all()


def test_masked_fraction_matches_brute_force():
    rng = np.random.default_rng(5)
    regions = pd.DataFrame({"chrom": "c", "start": rng.integers(0, 900, 30)})
    regions["end"] = regions.start + rng.integers(1, 80, 30)
    starts = rng.integers(0, 900, 50)
    seqs = pd.DataFrame({"chrom": "c", "start": starts, "end": starts + 100})
    mask = np.zeros(1000, bool)
    for s, e in regions[["start", "end"]].values:
        mask[s:e] = True
    expected = [mask[s:s + 100].mean() for s in starts]
    np.testing.assert_allclose(genome.masked_fraction(seqs, regions, {"c": 1000}), expected)


def test_write_sequences_grouped_by_label(tmp_path, fasta):
    contigs = genome.write_contigs(fasta, str(tmp_path / "contigs.bed"), seq_length=100,
                                   folds=3, seed=2, min_gap=5)
    assert len(contigs) == 4
    seqs = genome.write_sequences(str(tmp_path / "contigs.bed"), str(tmp_path / "s.bed"), 100, 3,
                                  50, 100, chrom_sizes(fasta))
    labels = seqs.label.tolist()
    assert labels == sorted(labels)  # grouped fold0, fold1, fold2
    back = bed.read_labelled_bed(str(tmp_path / "s.bed"))
    pd.testing.assert_frame_equal(back, seqs)
    # every window lies inside one contig of its own label
    for row in seqs.itertuples():
        inside = contigs[(contigs.chrom == row.chrom) & (contigs.start <= row.start)
                         & (contigs.end >= row.end)]
        assert inside.label.tolist() == [row.label]
