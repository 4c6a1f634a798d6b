"""Plots: each figure's panels, data and labels, the files written, and the workflow's set."""

import json
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from seqnn import SeqnnError
from seqnn.apply.accuracy import ALL_TRACKS, cv_summary
from seqnn.plots import report as P
from seqnn.plots import scatter as SC
from seqnn.plots import style as S

IDS = ["peak", "rna_fwd", "rna_rev"]
PAIRS = [0, 2, 1]


def history(offset):
    epochs = np.arange(1, 6)
    return pd.DataFrame({"epoch": epochs, "loss": 1 / epochs + offset, "val_loss": 1.1 / epochs,
                         "pearsonr": 0.1 * epochs, "val_pearsonr": [0.1, 0.3, 0.5, 0.4, 0.45],
                         "r2": 0.0, "val_r2": 0.0})


@pytest.fixture
def summary(tmp_path):
    """cv_summary of two folds and their ensembles (3 tracks, pearsonr / r2 / spearmanr)."""
    def acc(name, base):
        path = tmp_path / f"{name}.tsv"
        pd.DataFrame({"index": range(3), "identifier": IDS, "description": "",
                      "pearsonr": base + np.array([0.1, 0.2, 0.3]), "r2": base,
                      "spearmanr": base + 0.05, "auc_labels": "none"}).to_csv(path, sep="\t",
                                                                               index=False)
        return str(path)

    return cv_summary({"f0": acc("a", 0.2), "f1": acc("b", 0.4)},
                      ensemble={"f0": acc("c", 0.3), "f1": acc("d", 0.5)})


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_track_groups():
    assert P.track_groups(IDS, PAIRS) == [(0,), (1, 2)]
    assert P.track_groups(IDS, PAIRS, ["rna_rev"]) == [(1, 2)]
    assert P.track_groups(IDS, PAIRS, limit=1) == [(0,)]
    with pytest.raises(SeqnnError, match="plots.tracks: nope not in the track sheet"):
        P.track_groups(IDS, PAIRS, ["nope"])


def test_training_curves(tmp_path):
    fig = P.training_curves({"f0": history(0), "f1": history(0.5)})
    loss_ax, r_ax = fig.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert len(loss_ax.lines) == 4 and len(r_ax.lines) == 6  # train + valid per fold, 2 dots
    np.testing.assert_allclose(loss_ax.lines[2].get_ydata(), 1 / np.arange(1, 6) + 0.5)
    dot = r_ax.lines[2]
    assert (dot.get_xdata()[0], dot.get_ydata()[0]) == (3, 0.5)  # best validation epoch
    labels = [t.get_text() for t in r_ax.get_legend().get_texts()]
    assert labels == ["f0 train", "f0 valid", "f1 train", "f1 valid"]
    S.save(fig, [tmp_path / "t.png", tmp_path / "t.svg", tmp_path / "t.pdf"], dpi=100)
    width, height = png_size(tmp_path / "t.png")
    assert width > 600 and height > 250 and (tmp_path / "t.png").stat().st_size > 20_000
    assert (tmp_path / "t.svg").read_text().count("<path") > 20
    assert (tmp_path / "t.pdf").read_bytes()[:5] == b"%PDF-"


def test_fit_line_regplot_and_jointplot_against_numpy(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = 2.5 * x - 1 + rng.normal(0, 0.5, 300)
    a, b, r = SC.fit_line(x, y)
    np.testing.assert_allclose([a, b], np.polyfit(x, y, 1), rtol=1e-10)
    assert r == pytest.approx(stats.pearsonr(x, y).statistic, rel=1e-10)
    assert np.isnan(SC.fit_line(np.ones(5), np.arange(5))[0])
    fig = SC.jointplot(x, y, "obs", "pred", title="t")
    main, top, right = fig.axes
    assert (main.get_xlabel(), main.get_ylabel(), top.get_title()) == ("obs", "pred", "t")
    line = main.lines[0]
    np.testing.assert_allclose(line.get_ydata(), a * line.get_xdata() + b)
    assert main.texts[0].get_text() == f"y = {a:.3g} x - {abs(b):.3g}\nr = {r:.3f}"
    assert sum(p.get_height() for p in top.patches) == 300  # the marginal histogram of x
    assert sum(p.get_width() for p in right.patches) == 300
    S.save(fig, tmp_path / "j.png")
    assert png_size(tmp_path / "j.png")[0] > 300


def test_accuracy_joint_per_track():
    rng = np.random.default_rng(0)
    target = rng.poisson(5, (200, 3)).astype(float)
    pred = target + rng.normal(0, 1, target.shape)
    fig = SC.accuracy_joint([(pred[:100], target[:100]), (pred[100:], target[100:])], IDS,
                            [(0,), (1, 2)], {"peak": 0.81234, "rna_fwd": 0.5, "rna_rev": 0.4})
    subs = fig.subfigs
    assert len(subs) == 3
    main, top, _ = subs[0].axes
    assert top.get_title() == "peak  cross-validated r = 0.812"
    points = main.collections[0].get_offsets()
    assert len(points) == 200
    obs, prd = (np.log10(np.maximum(v[:, 0], 0) + 1) for v in (target, pred))
    np.testing.assert_allclose(points[:, 0], obs)
    a, b, r = SC.fit_line(obs, prd)
    assert main.texts[0].get_text().endswith(f"r = {r:.3f}")
    assert subs[2].axes[1].get_title().startswith("rna_rev")


def test_r_distribution_and_fold_bars(summary):
    fig = P.r_distribution(summary)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["f0", "f1"]
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections
                             if len(c.get_offsets()) == 3])
    want = summary[(summary.metric == "pearsonr") & (summary.identifier != ALL_TRACKS)]
    np.testing.assert_allclose(np.sort(points), np.sort(want[["f0", "f1"]].to_numpy().ravel()))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["single", "ensemble"]

    fig = P.fold_bars(summary)
    assert [a.get_title() for a in fig.axes] == ["pearsonr", "r2", "spearmanr"]
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height())
    means = summary[(summary.metric == "pearsonr") & (summary.identifier == ALL_TRACKS)]
    assert heights == sorted(np.round(means[["f0", "f1"]].to_numpy().ravel(), 6))
    assert len(fig.axes[0].lines) == 4  # SEM error bars: one per bar


def test_loci_and_roc_pr():
    bins = 16
    target = np.zeros((bins, 3))
    target[4:8] = [3, 2, 5]
    locus = {"chrom": "chr1", "start": 1000, "end": 1000 + bins * 32, "reason": "best",
             "r": 0.9, "fold": "f0", "target": target, "pred": target * 0.5}
    fig = P.loci([locus, {**locus, "reason": "worst", "r": -0.1}], IDS, [(0,), (1, 2)], 32)
    assert len(fig.axes) == 4  # 2 rows (peak, the strand pair) x 2 windows
    pair_ax = fig.axes[2]
    assert pair_ax.get_ylabel() == "rna_fwd / rna_rev"
    assert pair_ax.get_xlabel() == "chr1 position (kb)"
    minus = pair_ax.lines[1].get_ydata()
    np.testing.assert_allclose(minus, -2.5 * (np.arange(bins) >= 4) * (np.arange(bins) < 8))
    assert pair_ax.get_ylim()[0] < -4  # the reverse strand is drawn below the axis
    assert fig.axes[0].get_title() == "chr1:1,000-1,512\nbest, f0, r = 0.900"
    assert fig.axes[1].get_title().startswith("chr1:1,000-1,512\nworst")
    assert P.loci([], IDS, [(0,)], 32).axes[0].texts

    rng = np.random.default_rng(0)
    label = rng.random((300, 3)) < 0.2
    score = label + rng.normal(0, 0.8, label.shape)
    fig = P.roc_pr([(label, score)], IDS, ["peaks", "binary", "none"], [0, 1, 2],
                   {"peak": 0.8, "rna_fwd": 0.7, "rna_rev": np.nan})
    roc, pr = fig.axes
    assert len(roc.lines) == 3 and len(pr.lines) == 2  # two curves + the diagonal
    assert (roc.lines[0].get_xdata()[-1], roc.lines[0].get_ydata()[-1]) == (1, 1)
    assert [t.get_text() for t in roc.get_legend().get_texts()] == [
        "peak (peaks) AUROC 0.800", "rna_fwd (binary) AUROC 0.700"]
    message = P.roc_pr([(label, score)], IDS, ["none"] * 3, [0, 1, 2])
    assert "evaluate.peaks" in message.axes[0].texts[0].get_text()
    message = P.roc_pr([(label[:, [0]] & False, score)], IDS, ["peaks"], [0])
    assert "no peak was called" in message.axes[0].texts[0].get_text()


def test_data_overview():
    seqs = pd.DataFrame({"chrom": ["a", "a", "b", "b", "b"], "start": 0, "end": 1,
                         "label": ["fold0", "fold1", "fold1", "fold10", "fold2"]})
    (ax,) = P.data_overview(seqs).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fold0", "fold1", "fold2", "fold10"]
    tops = [round(p.get_y() + p.get_height()) for p in ax.patches]
    assert tops == [1, 1, 0, 0, 1, 2, 1, 1]  # chromosome a, then b stacked on it


def test_html_pages(summary, tmp_path):
    P.summary_page(summary, tmp_path / "s.html")
    text = (tmp_path / "s.html").read_text()
    rows = re.findall(r"<tr>\s*(?:<th[^>]*>ensemble</th>\s*)?<th>([^<]+)</th>(.*?)</tr>", text,
                      re.S)
    cells = {name: re.findall(r"<td>([^<]*)</td>", rest) for name, rest in rows[4:]}
    assert list(cells) == [*IDS, ALL_TRACKS]  # the ensemble rows; metrics in summary order
    assert cells["rna_fwd"] == ["0.600 ± 0.100", "0.400 ± 0.100", "0.450 ± 0.100"]
    assert re.findall(r"<th>(\w+)</th>", text)[:3] == ["pearsonr", "r2", "spearmanr"]
    P.config_page({"plots": {"loci": ["chr1:1-9"]}, "x": "<b>"}, tmp_path / "c.html")
    text = (tmp_path / "c.html").read_text()
    assert "plots:\n  loci:\n  - chr1:1-9\nx: &lt;b&gt;" in text


def test_pick_loci():
    def locus(reason, r):
        return {"reason": reason, "r": r, "chrom": "c", "start": 0, "end": 1}

    examples = {"f0": {"loci": [locus("best", 0.8), locus("worst", 0.1),
                                locus("asked c:1-2", 0.5)]},
                "f1": {"loci": [locus("best", 0.9), locus("best", 0.7), locus("worst", 0.3)]}}
    picked = P.pick_loci(examples, 1)
    assert [(e["reason"], e["r"], e["fold"]) for e in picked] == [
        ("best", 0.9, "f1"), ("worst", 0.1, "f0"), ("asked c:1-2", 0.5, "f0")]
    assert len(P.pick_loci(examples, 2)) == 5


# ---------------------------------------------------------------------------------------------
# The workflow: every plot and the report, rendered by a real browser

PLOT_NAMES = ["data", "training", "scatter", "r_distribution", "folds", "loci", "roc_pr"]
TINY_PARAMS = {
    "train": {"batch_size": 4, "learning_rate": 0.01, "patience": 5, "train_epochs_max": 2},
    "model": {"seq_length": 512, "augment_rc": True, "augment_shift": 1,
              "trunk": [{"name": "conv_dna", "filters": 4, "kernel_size": 5, "pool_size": 16}],
              "head": {"name": "final", "units": 3, "activation": "softplus"}},
}


def tiny_workdir(work, **data):
    """A tiny genome, three tracks (the last two a strand pair), a tiny model and its config."""
    import yaml
    from conftest import write_tiny_bigwig, write_tiny_config, write_tiny_fasta, write_tiny_sheet

    (work / "tracks").mkdir(parents=True)
    write_tiny_fasta(work / "genome.fa")
    write_tiny_bigwig(work / "tracks/a.bw")
    write_tiny_sheet(work / "targets.tsv", [
        {"identifier": "a", "file": "tracks/a.bw"},
        {"identifier": "s_fwd", "file": "tracks/a.bw", "strand_pair": 2},
        {"identifier": "s_rev", "file": "tracks/a.bw", "strand_pair": 1}])
    write_tiny_config(work / "config.yaml", "genome.fa", "targets.tsv", **data)
    config = yaml.safe_load((work / "config.yaml").read_text())
    config.update(model="params.json", train={"epochs": 1, "threads": 1},
                  evaluate={"shifts": [-1, 0, 1], "peaks": True, "batch_size": 4, "threads": 1,
                            "tss": None},
                  plots={"n_loci": 1, "formats": ["png", "svg"], "loci": ["chrII:0-512"]})
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "params.json").write_text(json.dumps(TINY_PARAMS))
    return work


@pytest.mark.workflow
def test_ensemble_jobs_in_the_cross_validation_dag(tmp_path):
    from helpers import run_snakemake

    work = tiny_workdir(tmp_path / "cv")
    out = run_snakemake(work, "--configfile", str(work / "config.yaml"), "-n").stdout
    jobs = {}
    for block in out.split("rule evaluate:")[1:]:
        models = re.findall(r"results/models/f(\d)/model_best.keras", block.split("output:")[0])
        jobs[re.search(r"evalset=(\S+)", block).group(1)] = sorted(models)
    assert jobs == {"f0": ["0"], "f1": ["1"], "f2": ["2"], "ensemble/f0": ["0", "2"],
                    "ensemble/f1": ["0", "1"], "ensemble/f2": ["1", "2"]}


BLOCKED = textwrap.dedent("""
    import importlib.abc, sys

    class Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras"):
                raise ImportError(f"{name} is blocked")

    sys.meta_path.insert(0, Blocked())
    import seqnn.apply.accuracy, seqnn.apply.attribution, seqnn.apply.gather
    import seqnn.apply.tiling, seqnn.plots.interpret, seqnn.plots.report
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
""")


def test_plots_import_without_tensorflow():
    """seqnn.plots and the Keras-free modules of seqnn.apply they and the gathering rules use
    import with TensorFlow and Keras blocked (an import of either fails)."""
    done = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
