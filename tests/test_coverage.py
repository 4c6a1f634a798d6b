"""Coverage transforms against hand-computed values; bigWig and BAM reading."""

import numpy as np
import pandas as pd
import pyBigWig
import pysam
import pytest

from seqnn.data import coverage
from seqnn.data.coverage import POOLS, SUM_STATS, compute_targets, transform, untransform


def test_transform_hand_computed():
    x = np.array([[1, 2, 3, 4, 5, 6, 7, 8]], dtype=np.float32)
    np.testing.assert_allclose(transform(x, 4, "sum"), [[10, 26]])
    np.testing.assert_allclose(transform(x, 4, "mean"), [[2.5, 6.5]])
    np.testing.assert_allclose(transform(x, 2, "max"), [[2, 4, 6, 8]])
    np.testing.assert_allclose(transform(x, 4, "median"), [[2.5, 6.5]])
    # scale applies to bases before pooling; crop removes whole bases at both ends
    np.testing.assert_allclose(transform(x, 2, "sum", scale=0.5, crop_bp=2), [[3.5, 5.5]])
    # sum_sqrt: -1 + sqrt(1 + sum); sum 26 -> 5.196
    np.testing.assert_allclose(transform(x, 4, "sum_sqrt"), [[np.sqrt(11) - 1, np.sqrt(27) - 1]],
                               rtol=1e-6)
    np.testing.assert_allclose(transform(x, 4, "sum_exp75"), [[11**0.75 - 1, 27**0.75 - 1]],
                               rtol=1e-6)
    # soft clip at 16: 26 -> 16 - 1 + sqrt(26 - 16 + 1); hard clip at 18
    np.testing.assert_allclose(transform(x, 4, "sum", clip_soft=16), [[10, 15 + np.sqrt(11)]],
                               rtol=1e-6)
    np.testing.assert_allclose(transform(x, 4, "sum", clip_soft=16, clip=18), [[10, 18]])


def test_transform_limits_to_float16():
    big = np.full((1, 4), 1e6, dtype=np.float32)
    assert transform(big, 4, "sum")[0, 0] == np.finfo(np.float16).max


@pytest.mark.parametrize("sum_stat", SUM_STATS)
def test_untransform_round_trips(sum_stat):
    rng = np.random.default_rng(0)
    x = rng.gamma(0.5, 20, size=(6, 64)).astype(np.float32)
    pool = sum_stat.split("_")[0].replace("avg", "mean")
    expected = POOLS[pool](x.reshape(6, 8, 8), axis=2)
    clip_soft = float(np.median(transform(x, 8, sum_stat, scale=0.3)))  # half the bins clip
    y = transform(x, 8, sum_stat, scale=0.3, clip_soft=clip_soft)
    assert (y < transform(x, 8, sum_stat, scale=0.3)).sum() >= 20
    np.testing.assert_allclose(untransform(y, sum_stat, 0.3, clip_soft), expected, rtol=2e-4,
                               atol=1e-4)


def test_unknown_sum_stat():
    with pytest.raises(Exception, match="sum_stat 'total' is unknown"):
        transform(np.zeros((1, 4)), 2, "total")


@pytest.fixture
def bigwig(tmp_path):
    path = str(tmp_path / "t.bw")
    values = np.arange(100, dtype=np.float64)
    bw = pyBigWig.open(path, "w")
    bw.addHeader([("c1", 100)])
    # bases 0-9 have no entry (NaN)
    bw.addEntries("c1", 10, values=list(values[10:]), span=1, step=1)
    bw.close()
    return path, values


def _seqs(starts, length, chrom="c1"):
    starts = np.asarray(starts)
    return pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + length,
                         "label": "fold0"})


def test_bigwig_targets_nan_and_blacklist(bigwig):
    path, values = bigwig
    track = coverage.open_track(path)
    row = {"sum_stat": "sum", "scale": 1.0}
    seqs = _seqs([0, 40, 80], 20)
    got = compute_targets(track, seqs, row, pool_width=10)
    expected = np.array([[0, values[10:20].sum()], [values[40:50].sum(), values[50:60].sum()],
                         [values[80:90].sum(), values[90:100].sum()]])
    np.testing.assert_allclose(got, expected, rtol=1e-3)
    # NaN -> the sequence median of the covered bases
    got = compute_targets(track, seqs.iloc[:1], row, pool_width=10, nan_value="baseline")
    np.testing.assert_allclose(got[0, 0], 10 * np.median(values[10:20]), rtol=1e-3)
    # blacklisted bases are clipped to the sequence baseline (median)
    masks = pd.DataFrame({"chrom": ["c1"], "start": [95], "end": [100]})
    got = compute_targets(track, seqs.iloc[2:], row, pool_width=10, masks=masks)
    capped = np.minimum(values[80:100], np.median(values[80:100]))
    expected = np.r_[values[80:95], capped[15:]]
    np.testing.assert_allclose(got[0], expected.reshape(2, 10).sum(1), rtol=1e-3)


def test_bigwig_chunks_equal_single_read(bigwig, monkeypatch):
    path, _ = bigwig
    track = coverage.open_track(path)
    seqs = _seqs(np.arange(0, 80, 5), 20)
    whole = compute_targets(track, seqs, {"sum_stat": "mean", "scale": 2.0}, pool_width=4)
    monkeypatch.setattr(coverage, "CHUNK_BP", 30)
    chunked = compute_targets(track, seqs, {"sum_stat": "mean", "scale": 2.0}, pool_width=4)
    np.testing.assert_array_equal(whole, chunked)


@pytest.fixture
def bam(tmp_path):
    """Reads on c1 (length 200): (start, cigar, reverse, read2)."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": 200}]}
    reads = [(10, "20M", False, False), (30, "10M50N10M", True, False), (50, "5M", False, True),
             (100, "30M", True, True)]
    unsorted = str(tmp_path / "u.bam")
    with pysam.AlignmentFile(unsorted, "wb", header=header) as f:
        for i, (start, cigar, rev, read2) in enumerate(reads):
            a = pysam.AlignedSegment(f.header)
            a.query_name, a.reference_id, a.reference_start = f"r{i}", 0, start
            a.cigarstring, a.mapping_quality = cigar, 60
            n = sum(int(x) for x in cigar.replace("N", "M").split("M")[:-1:2])
            a.query_sequence = "A" * n
            a.flag = (16 if rev else 0) | ((1 | 128 | 2) if read2 else 0)
            f.write(a)
    path = str(tmp_path / "r.bam")
    pysam.sort("-o", path, unsorted)
    pysam.index(path)
    return path


def test_bam_read_coverage_and_5p(bam):
    expected = np.zeros(200)
    for a, b in [(10, 30), (30, 40), (90, 100), (50, 55), (100, 130)]:
        expected[a:b] += 1
    track = coverage.open_track(bam)
    np.testing.assert_array_equal(track.values("c1", 0, 200), expected)
    np.testing.assert_array_equal(track.values("c1", 20, 60), expected[20:60])
    five = np.zeros(200)
    five[[10, 99, 50, 129]] = 1
    track = coverage.open_track(bam, count="5p")
    np.testing.assert_array_equal(track.values("c1", 0, 200), five)


def test_bam_strand(bam):
    # transcript strand: read1 as mapped, read2 flipped (reverse_strand flips both)
    plus = coverage.open_track(bam, bam_strand="+", count="5p").values("c1", 0, 200)
    np.testing.assert_array_equal(np.flatnonzero(plus), [10, 129])
    minus = coverage.open_track(bam, bam_strand="-", count="5p").values("c1", 0, 200)
    np.testing.assert_array_equal(np.flatnonzero(minus), [50, 99])
    rev = coverage.open_track(bam, bam_strand="+", count="5p", reverse_strand=True)
    np.testing.assert_array_equal(np.flatnonzero(rev.values("c1", 0, 200)), [50, 99])
