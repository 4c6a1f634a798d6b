"""Tests of the synthetic demo dataset (seqnn.data.demo)."""

import re
import time
from itertools import pairwise

import numpy as np
import pyBigWig
import pysam
import pytest

from seqnn.data.demo import CHROMS, EFFECT, GAPS, MOTIFS, TRACKS, make_demo

RC = str.maketrans("ACGT", "TGCA")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    start = time.perf_counter()
    summary = make_demo(out / "a", seed=7)
    return out, summary, time.perf_counter() - start


@pytest.fixture(scope="module")
def seqs(demo):
    with pysam.FastaFile(str(demo[0] / "a" / "genome.fa")) as fa:
        return {c: fa.fetch(c) for c in fa.references}


@pytest.fixture(scope="module")
def tracks(demo):
    """Track values per identifier and chromosome."""
    out = {}
    for t in TRACKS:
        with pyBigWig.open(str(demo[0] / "a" / t.file)) as bw:
            out[t.identifier] = {c: bw.values(c, 0, n, numpy=True) for c, n in CHROMS.items()}
    return out


@pytest.fixture(scope="module")
def motifs(demo):
    """motifs.bed rows as (chrom, start, end, name, score, strand, planted)."""
    lines = (demo[0] / "a" / "motifs.bed").read_text().splitlines()
    assert lines[0] == "#chrom\tstart\tend\tname\tscore\tstrand\tplanted"
    rows = [line.split("\t") for line in lines[1:]]
    return [(c, int(s), int(e), n, int(sc), st, int(p)) for c, s, e, n, sc, st, p in rows]


def starts_of(motifs, name, strand, chrom):
    return np.array([r[1] for r in motifs if r[3] == name and r[5] == strand and r[0] == chrom])


def window_mean(values, starts, lo, hi):
    """Mean of `values` at offsets lo..hi-1 from every start (NaN and out of range skipped)."""
    idx = (starts[:, None] + np.arange(lo, hi)).ravel()
    return np.nanmean(values[idx[(idx >= 0) & (idx < len(values))]])


def test_constants():
    words = [w for m in MOTIFS.values() for w in (m, m.translate(RC)[::-1])]
    assert len(set(words)) == 6 and all(8 <= len(w) <= 10 for w in words)
    assert [TRACKS[t.strand_pair].strand_pair for t in TRACKS] == list(range(len(TRACKS)))
    assert [t.strand_pair for t in TRACKS] == [0, 1, 3, 2]


def test_runtime_and_summary(demo, motifs):
    _, summary, seconds = demo
    assert seconds < 60  # about 4.5 s alone on one core; generous for a loaded CI machine
    assert summary["genome_length"] == 2_200_000
    assert summary["n_length"] == sum(e - s for _, s, e in GAPS)
    for name in MOTIFS:
        planted = sum(1 for r in motifs if r[3] == name and r[6] == 1)
        chance = sum(1 for r in motifs if r[3] == name and r[6] == 0)
        assert summary["motifs"][name] == {"planted": planted, "chance": chance}
        assert 2_200_000 / 6000 < planted < 2_200_000 / 4000


def test_deterministic(demo):
    out = demo[0]
    make_demo(out / "b", seed=7)
    make_demo(out / "c", seed=8)
    files = sorted(p.name for p in (out / "a").iterdir())
    assert files == sorted(["genome.fa", "genome.fa.fai", "motifs.bed", "regions.bed",
                            "variants.vcf"] + [t.file for t in TRACKS])
    assert sorted(p.name for p in (out / "b").iterdir()) == files
    for name in files:
        a = (out / "a" / name).read_bytes()
        assert a == (out / "b" / name).read_bytes(), name
        if name != "genome.fa.fai":
            assert a != (out / "c" / name).read_bytes(), name


def test_fasta(demo, seqs):
    assert {c: len(s) for c, s in seqs.items()} == CHROMS
    assert list(seqs) == list(CHROMS)
    lines = (demo[0] / "a" / "genome.fa").read_text().splitlines()
    assert [line for line in lines if line.startswith(">")] == [f">{c}" for c in CHROMS]
    assert {len(line) for line in lines if not line.startswith(">")} == {60, 40, 20}
    for chrom, seq in seqs.items():
        expected = np.zeros(len(seq), bool)
        for c, s, e in GAPS:
            expected[s:e] |= c == chrom
        assert np.array_equal(np.frombuffer(seq.encode(), np.uint8) == ord("N"), expected)
        assert set(seq) == set("ACGTN" if expected.any() else "ACGT")
    acgt = "".join(seqs.values()).replace("N", "")
    assert abs((acgt.count("G") + acgt.count("C")) / len(acgt) - 0.4) < 0.01
    assert any(e - s >= 20_000 for _, s, e in GAPS) and any(e - s <= 100 for _, s, e in GAPS)


def test_bigwig_headers_and_gaps(demo, seqs, tracks):
    for t in TRACKS:
        with pyBigWig.open(str(demo[0] / "a" / t.file)) as bw:
            assert list(bw.chroms().items()) == list(CHROMS.items())
        for chrom, seq in seqs.items():
            values = tracks[t.identifier][chrom]
            is_n = np.frombuffer(seq.encode(), np.uint8) == ord("N")
            assert np.array_equal(np.isnan(values), is_n), (t.file, chrom)
            counts = values[~is_n]
            assert counts.min() >= 0 and np.array_equal(counts, np.round(counts))


def test_motifs_match_sequence(seqs, motifs):
    assert motifs == sorted(motifs, key=lambda r: (list(CHROMS).index(r[0]), r[1]))
    found = []
    for name, motif in MOTIFS.items():
        for strand, word in (("+", motif), ("-", motif.translate(RC)[::-1])):
            for chrom, seq in seqs.items():
                found += [(chrom, m.start(), name, strand) for m in re.finditer(f"(?={word})", seq)]
    assert sorted(found) == sorted((r[0], r[1], r[3], r[5]) for r in motifs)
    for chrom, start, end, name, score, strand, _ in motifs:
        word = seqs[chrom][start:end]
        assert (word if strand == "+" else word.translate(RC)[::-1]) == MOTIFS[name]
        assert score == EFFECT[name]
    planted = sorted((r[0], r[1]) for r in motifs if r[6])
    assert all(a[0] != b[0] or b[1] - a[1] >= 10 for a, b in pairwise(planted))
    assert sum(1 for r in motifs if not r[6]) > 0


def test_activator_raises_peak(tracks, motifs):
    peak = tracks["peak"]["chr1"]
    starts = np.concatenate([starts_of(motifs, "activator", s, "chr1") for s in "+-"])
    far = np.ones(len(peak), bool)
    far[(starts[:, None] + np.arange(-400, 410)).ravel().clip(0, len(peak) - 1)] = False
    near = window_mean(peak, starts, -95, 105)
    assert near > 8 * np.nanmean(peak)
    assert near > 15 * np.nanmean(peak[far])


def test_repressor_clears_nuc(tracks, motifs):
    nuc = tracks["nuc"]["chr1"]
    starts = np.concatenate([starts_of(motifs, "repressor", s, "chr1") for s in "+-"])
    assert 8 < np.nanmean(nuc) < 12
    assert window_mean(nuc, starts, -145, 155) < 0.1 * np.nanmean(nuc)


@pytest.mark.parametrize("chrom", list(CHROMS))
def test_promoter_is_directional(tracks, motifs, chrom):
    fwd, rev = tracks["rna_fwd"][chrom], tracks["rna_rev"][chrom]
    plus = starts_of(motifs, "promoter", "+", chrom)
    minus = starts_of(motifs, "promoter", "-", chrom)
    down_plus = window_mean(fwd, plus, 10, 510)
    assert down_plus > 8 * window_mean(fwd, plus, -500, 0)
    assert down_plus > 8 * window_mean(rev, plus, -500, 510)
    down_minus = window_mean(rev, minus, -500, 0)
    assert down_minus > 8 * window_mean(rev, minus, 10, 510)
    assert down_minus > 8 * window_mean(fwd, minus, -500, 510)


def test_regions_and_variants(demo, seqs, motifs):
    """regions.bed: planted motif rows; variants.vcf: SNVs that break them, and background SNVs."""
    rows = [line.split("\t") for line in (demo[0] / "a" / "regions.bed").read_text().splitlines()]
    regions = [(c, int(s), int(e), n, int(sc), st, 1) for c, s, e, n, sc, st in rows]
    assert set(regions) <= set(motifs)
    assert sorted(r[3] for r in regions) == sorted(list(MOTIFS) * 8)
    with pysam.VariantFile(str(demo[0] / "a" / "variants.vcf")) as vcf:
        records = list(vcf)
    assert len(records) == 2 * len(regions)
    for rec in records:
        seq = seqs[rec.chrom]
        assert seq[rec.start] == rec.ref and rec.alts[0] in "ACGT" and rec.alts[0] != rec.ref
        hit = [r for r in regions if r[0] == rec.chrom and r[1] <= rec.start < r[2]]
        if rec.id.startswith("background_"):
            assert not any(m[0] == rec.chrom and abs(m[1] - rec.start) < 300 for m in motifs)
        else:
            assert len(hit) == 1 and rec.id.startswith(hit[0][3]) and rec.start == hit[0][1] + 5
            site = seq[hit[0][1] : hit[0][2]]
            alt = site[:5] + rec.alts[0] + site[6:]
            assert MOTIFS[hit[0][3]] in (site, site.translate(RC)[::-1])
            assert alt not in [m for m in MOTIFS.values()] + [
                m.translate(RC)[::-1] for m in MOTIFS.values()]
