"""Real snakemake runs of the data stage: the demo (values, determinism) and the yeast set."""

import filecmp
import json
import os
import shutil

import h5py
import numpy as np
import pandas as pd
import pyBigWig
import pytest
from helpers import REPO, run_snakemake

from seqnn.data import coverage, demo, dna
from seqnn.data.bed import read_labelled_bed

pytestmark = [pytest.mark.workflow]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    run_snakemake(work, "data")
    return work


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root)
                  for f in fs)


def test_demo_statistics_and_folds(demo_run):
    data = demo_run / "results" / "data"
    stats = json.loads((data / "statistics.json").read_text())
    seqs = read_labelled_bed(str(data / "sequences.bed"))
    assert stats["seq_length"] == 2048 and stats["target_length"] == 128
    assert stats["num_targets"] == 4 and stats["pool_width"] == 16
    assert [stats[f"fold{k}_seqs"] for k in range(3)] == [
        int((seqs.label == f"fold{k}").sum()) for k in range(3)]
    contigs = read_labelled_bed(str(data / "contigs.bed"))
    # contigs never overlap and never contain a planted N gap of >= min_gap bases
    for chrom, c in contigs.groupby("chrom"):
        c = c.sort_values("start")
        assert (c.start.values[1:] >= c.end.values[:-1]).all()
        for g_chrom, g_start, g_end in demo.GAPS:
            if g_chrom == chrom and g_end - g_start >= 32:
                assert not ((c.start < g_end) & (c.end > g_start)).any()
    # windows of different folds never overlap
    for _, s in seqs.groupby("chrom"):
        s = s.sort_values("start")
        overlap = s.start.values[1:] < s.end.values[:-1]
        clash = overlap & (s.label.values[1:] != s.label.values[:-1])
        assert not clash.any()
    # every fold totals within one longest contig of the others
    size = (contigs.end - contigs.start).groupby(contigs.label).sum()
    assert size.max() - size.min() <= (contigs.end - contigs.start).max()


def test_demo_records_equal_bigwig_transform(demo_run):
    tf = pytest.importorskip("tensorflow")  # noqa: F841
    from seqnn.train.dataset import dataset

    data = demo_run / "results" / "data"
    seqs = read_labelled_bed(str(data / "sequences.bed"))
    sheet = pd.read_csv(data / "targets.txt", sep="\t", index_col=0)
    assert sheet.identifier.tolist() == ["peak", "nuc", "rna_fwd", "rna_rev"]
    assert sheet.strand_pair.tolist() == [0, 1, 3, 2]
    fold1 = seqs[seqs.label == "fold1"]
    x, y = map(np.concatenate, zip(*[(a.numpy(), b.numpy()) for a, b in
                                     dataset(str(data), "fold1", 64)]))
    assert len(x) == len(fold1)
    fa = (demo_run / "resources" / "demo" / "genome.fa").read_text().split(">")[1:]
    chroms = {r.split("\n", 1)[0]: r.split("\n", 1)[1].replace("\n", "") for r in fa}
    for i in (0, len(fold1) // 2, len(fold1) - 1):
        row = fold1.iloc[i]
        seq = chroms[row.chrom][row.start : row.end]
        np.testing.assert_array_equal(x[i], dna.one_hot(dna.encode(seq)))
        for t, track in enumerate(sheet.itertuples()):
            with pyBigWig.open(str(demo_run / track.file)) as bw:
                base = np.nan_to_num(bw.values(row.chrom, int(row.start), int(row.end)))
            expected = np.sqrt(1 + base.reshape(128, 16).sum(1)) - 1  # sum_sqrt, below clip_soft
            np.testing.assert_allclose(y[i, :, t], expected, rtol=1e-3, atol=1e-3)
            with h5py.File(data / "coverage" / f"{track.identifier}.h5") as f:
                np.testing.assert_array_equal(f["targets"][fold1.index[i]], y[i, :, t])


def test_demo_targets_carry_planted_motifs(demo_run):
    data = demo_run / "results" / "data"
    seqs = read_labelled_bed(str(data / "sequences.bed"))
    motifs = pd.read_csv(demo_run / "resources" / "demo" / "motifs.bed", sep="\t", comment="#",
                         header=None, names=["chrom", "start", "end", "name", "score", "strand",
                                             "planted"])
    peak = coverage.read_targets(str(data / "coverage" / "peak.h5"))
    nuc = coverage.read_targets(str(data / "coverage" / "nuc.h5"))
    hit = {"activator": [], "repressor": []}
    for m in motifs[motifs.name.isin(list(hit))].itertuples():
        inside = seqs[(seqs.chrom == m.chrom) & (seqs.start <= m.start) & (seqs.end > m.end)]
        for i, s in zip(inside.index, inside.start):
            hit[m.name].append((i, (m.start - s) // 16))
    rows, bins = np.array(hit["activator"]).T
    assert peak[rows, bins].astype(float).mean() > 3 * peak.astype(float).mean()
    rows, bins = np.array(hit["repressor"]).T
    assert nuc[rows, bins].astype(float).mean() < 0.5 * nuc.astype(float).mean()


def test_demo_is_byte_identical_when_rerun(demo_run, tmp_path):
    run_snakemake(tmp_path, "data")
    for sub in ("results/data", "resources/demo"):
        files = _tree(demo_run / sub)
        assert files == _tree(tmp_path / sub)
        match, mismatch, errors = filecmp.cmpfiles(demo_run / sub, tmp_path / sub, files,
                                                   shallow=False)
        assert not mismatch and not errors


def test_dry_run_and_lint_are_clean():
    result = run_snakemake(REPO, "-n", "--quiet", "rules")
    assert result.returncode == 0
    lint = run_snakemake(REPO, "--lint", check=False)
    assert "Lints for" not in lint.stdout + lint.stderr, lint.stdout[-3000:]


@pytest.fixture(scope="module")
def yeast_run(tmp_path_factory, yeast_dir):
    """The data stage on config/yeast, with its ../shared/data/yeast paths made absolute."""
    work = tmp_path_factory.mktemp("yeast")
    shutil.copytree(REPO / "config", work / "config")
    for name in ("config.yaml", "targets.tsv"):
        path = work / "config" / "yeast" / name
        path.write_text(path.read_text().replace("../shared/data/yeast", str(yeast_dir)))
    run_snakemake(work, "data", "--configfile", str(work / "config/yeast/config.yaml"))
    return work


@pytest.mark.yeast
def test_yeast_targets_equal_bigwig_means(yeast_run, yeast_dir):
    data = yeast_run / "results" / "data"
    seqs = read_labelled_bed(str(data / "sequences.bed"))
    mnase = coverage.read_targets(str(data / "coverage" / "MNase.h5"))
    with pyBigWig.open(str(yeast_dir / "MNase.bw")) as bw:
        for i in (0, 100, len(seqs) - 1):
            s = seqs.iloc[i]
            for b in (0, 255, 511):
                lo = int(s.start) + 32 * b
                mean = np.nan_to_num(bw.values(s.chrom, lo, lo + 32, numpy=True)).mean()
                assert float(mnase[i, b]) == pytest.approx(mean, rel=1e-3, abs=1e-3)


@pytest.mark.yeast
def test_yeast_rna_strands_follow_genes(yeast_run, yeast_dir):
    data = yeast_run / "results" / "data"
    sheet = pd.read_csv(data / "targets.txt", sep="\t", index_col=0)
    fwd, rev = (sheet.identifier == "RNA_fwd").idxmax(), (sheet.identifier == "RNA_rev").idxmax()
    assert sheet.strand_pair[fwd] == rev and sheet.strand_pair[rev] == fwd
    seqs = read_labelled_bed(str(data / "sequences.bed"))
    tss = pd.read_csv(yeast_dir / "TSSs.bed", sep="\t", header=None, usecols=[0, 1, 5],
                      names=["chrom", "pos", "strand"])
    y = {t: coverage.read_targets(str(data / "coverage" / f"{t}.h5")) for t in ("RNA_fwd",
                                                                                "RNA_rev")}
    means = {}
    for strand, sign in (("+", 1), ("-", -1)):
        vals = {"RNA_fwd": [], "RNA_rev": []}
        for t in tss[tss.strand == strand].itertuples():
            body = t.pos + sign * 300  # inside the transcript
            hit = seqs[(seqs.chrom == t.chrom) & (seqs.start <= body) & (seqs.end > body)]
            for i, s in zip(hit.index[:1], hit.start[:1]):
                for track in vals:
                    vals[track].append(float(y[track][i, (body - s) // 32]))
        means[strand] = {k: np.mean(v) for k, v in vals.items()}
    assert means["+"]["RNA_fwd"] > 5 * means["+"]["RNA_rev"]
    assert means["-"]["RNA_rev"] > 5 * means["-"]["RNA_fwd"]


@pytest.mark.yeast
def test_yeast_folds_partition_genome(yeast_run):
    data = yeast_run / "results" / "data"
    contigs = read_labelled_bed(str(data / "contigs.bed"))
    sizes = {"II": 813_184, "IV": 1_531_933, "XVI": 948_066}
    assert set(contigs.label) == {f"fold{k}" for k in range(4)}
    for chrom, c in contigs.groupby("chrom"):
        c = c.sort_values("start")
        assert c.start.min() >= 0 and c.end.max() <= sizes[chrom]
        assert (c.start.values[1:] >= c.end.values[:-1]).all()
    # no N in yeast: contigs cover the genome up to the pieces dropped as too short (none here)
    assert (contigs.end - contigs.start).sum() == sum(sizes.values())
