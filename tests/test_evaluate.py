"""Evaluation: metrics against scipy, the RC/shift ensemble against a hand-made model whose
outputs are known, TSS regions, cv_summary on a hand-written two-fold case, and the CLI."""

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from seqnn import SeqnnError, cli
from seqnn.apply.accumulate import spearmanr_np
from seqnn.apply.accuracy import ALL_TRACKS, benjamini_hochberg, call_peaks, cv_summary
from seqnn.apply.evaluate import evaluate
from seqnn.data import records
from seqnn.data.coverage import untransform
from seqnn.data.splits import ensemble_folds
from seqnn.model.metrics import auroc_np, pearsonr_np, r2_np
from seqnn.plots.report import read_examples

keras = pytest.importorskip("keras")

SEQ, POOL, BINS = 64, 8, 8
SHEET = ("\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n"
         "0\ta_fwd\ta.bw\t\t\t1.0\tsum\t1\tA count\n"
         "1\ta_rev\tt.bw\t\t\t1.0\tsum\t0\tT count\n"
         "2\tc\tc.bw\t\t3\t2.0\tsum_sqrt\t2\tC count\n")


def one_hot(codes):
    return (np.asarray(codes)[..., None] == np.arange(4)).astype(np.float32)


def base_counts(x):
    """Counts of A, C, G, T per 8-bp bin of one-hot x [B, SEQ, 4] -> [B, BINS, 4]."""
    return x.reshape(len(x), BINS, POOL, 4).sum(2)


def hand_model():
    """Per 8-bp bin: track 0 counts A, track 1 counts T, track 2 counts C (a strided conv)."""
    inputs = keras.Input((SEQ, 4), name="sequence")
    conv = keras.layers.Conv1D(3, POOL, strides=POOL, use_bias=False)
    model = keras.Model(inputs, conv(inputs))
    kernel = np.zeros((POOL, 4, 3), np.float32)
    kernel[:, 0, 0] = kernel[:, 3, 1] = kernel[:, 1, 2] = 1
    conv.set_weights([kernel])
    return model


def expected_prediction(x, shifts, rc):
    """The augmented mean, derived by hand: shifting moves bases (N enters); on the reverse
    strand A<->T and C->G, and the stranded pair (tracks 0, 1) is swapped back."""
    out = []
    for s in shifts:
        xs = np.roll(x, s, axis=1)
        if s > 0:
            xs[:, :s] = 0
        elif s < 0:
            xs[:, s:] = 0
        a, c, g, t = np.moveaxis(base_counts(xs), -1, 0)
        out.append(np.stack([a, t, c], -1))
        if rc:
            out.append(np.stack([a, t, g], -1))
    return np.mean(out, axis=0)


def write_data(root, n=12, seed=0, split="fold0"):
    """A data directory whose targets are noisy base counts; windows overlap (stride 32)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (n, SEQ))
    x = one_hot(codes)
    a, c, _, t = np.moveaxis(base_counts(x), -1, 0)
    y = np.stack([a + rng.poisson(1, a.shape), t, rng.poisson(2, c.shape) + c], -1)
    y = y.astype(np.float16)
    root.mkdir(parents=True, exist_ok=True)
    records.write_tfrecord(str(root / "tfrecords" / f"{split}-0.tfr"), [
        records.example({"sequence": s.astype(np.uint8).tobytes(), "target": v.tobytes()})
        for s, v in zip(codes, y)])
    records.write_json({"num_targets": 3, "seq_length": SEQ, "seq_depth": 4, "seq_1hot": True,
                        "pool_width": POOL, "crop_bp": 0, "target_length": BINS,
                        f"{split}_seqs": n}, str(root / "statistics.json"))
    (root / "targets.txt").write_text(SHEET)
    bed = [f"chrA\t{i * 32}\t{i * 32 + SEQ}\t{split}" for i in range(n)]
    (root / "sequences.bed").write_text("\n".join(bed + ["chrB\t0\t64\tfold9"]) + "\n")
    return root, x, y.astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from seqnn.model.build import save_model

    root = tmp_path_factory.mktemp("eval")
    data, x, y = write_data(root / "data")
    save_model(hand_model(), root / "model.keras")
    return root, data, x, y


# ---------------------------------------------------------------------------------------------
# Metrics against scipy


def test_spearman_and_peaks_against_scipy():
    rng = np.random.default_rng(1)
    t = rng.poisson(2, (300, 3)).astype(float)  # many ties
    p = t + rng.normal(0, 1, t.shape)
    p[:, 2] = np.round(p[:, 2])
    got = spearmanr_np(t.reshape(30, 10, 3), p.reshape(30, 10, 3))
    want = [stats.spearmanr(t[:, k], p[:, k]).statistic for k in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)

    pvals = rng.random((200, 3)) ** 3
    pvals[:50, 1] = 0.5  # ties
    np.testing.assert_allclose(benjamini_hochberg(pvals),
                               stats.false_discovery_control(pvals, axis=0), rtol=1e-12)

    y = rng.poisson(1.0, (500, 2)) + rng.choice([-0.3, 0, 0.5], (500, 2))
    y[:5, 0] = 40  # five clear peaks in track 0
    labels = call_peaks(y)
    for k in range(2):  # basenji_test.py --peaks
        pvals = 1 - stats.poisson.cdf(np.round(y[:, k]) - 1, y[:, k].mean())
        q = stats.false_discovery_control(np.clip(pvals, 0, 1))
        np.testing.assert_array_equal(labels[:, k], q < 0.01)
    assert labels[:5, 0].all() and labels[:, 0].sum() == 5 and not labels[:, 1].any()


def test_ensemble_folds():
    # model f{k} tests on fold k and validates on fold k+1: fold 1 is unseen by f1 and f0
    assert ensemble_folds(3, 1) == [0, 1]
    assert ensemble_folds(5, 0) == [0, 4]


# ---------------------------------------------------------------------------------------------
# evaluate() against the hand-made model


@pytest.mark.parametrize("rc, shifts", [(False, [0]), (True, [-1, 0, 1])])
def test_evaluate_matches_hand_computed_ensemble(setup, tmp_path, rc, shifts):
    root, data, x, y = setup
    summary = evaluate(str(root / "model.keras"), str(data), str(tmp_path), split="fold0", rc=rc,
                       shifts=shifts, batch_size=5, peaks=True, sample_points=40, n_loci=1,
                       loci=["chrA:200-230"])
    pred = expected_prediction(x, shifts, rc)
    if rc:  # the RC copy moves the C track to G counts: the average differs from forward
        assert not np.allclose(pred[..., 2], expected_prediction(x, [0], False)[..., 2])
    acc = pd.read_csv(tmp_path / "acc.tsv", sep="\t")
    assert acc.identifier.tolist() == ["a_fwd", "a_rev", "c"]
    assert acc.description.tolist() == ["A count", "T count", "C count"]
    np.testing.assert_allclose(acc.pearsonr, pearsonr_np(y, pred), atol=2e-6)
    np.testing.assert_allclose(acc.r2, r2_np(y, pred), atol=2e-6)
    np.testing.assert_allclose(acc.spearmanr, spearmanr_np(y, pred), atol=2e-6)
    raw_t, raw_p = (untransform(v[..., 2], "sum_sqrt", 2.0, 3).ravel() for v in (y, pred))
    assert acc.pearsonr_raw[2] == pytest.approx(stats.pearsonr(raw_t, raw_p).statistic, abs=2e-6)
    assert acc.pearsonr_raw[0] == pytest.approx(acc.pearsonr[0], abs=2e-6)  # sum, scale 1
    assert acc.auc_labels.tolist() == ["peaks"] * 3
    labels = call_peaks(y.reshape(-1, 3))
    np.testing.assert_allclose(acc.auroc, auroc_np(labels, pred.reshape(-1, 3)), atol=2e-6)
    assert summary["sequences"] == 12 and summary["passes"] == len(shifts) * (1 + rc)

    ex = read_examples(tmp_path / "examples.h5")
    assert ex["sample"]["pred"].shape == (40, 3) and ex["sample"]["label"].dtype == bool
    assert ex["identifiers"] == ["a_fwd", "a_rev", "c"] and list(ex["strand_pair"]) == [1, 0, 2]
    assert ex["auc_labels"] == ["peaks"] * 3 and ex["scale"] == "raw"
    assert [e["reason"] for e in ex["loci"]] == ["best", "worst", "asked chrA:200-230"]
    r = [np.nanmean(pearsonr_np(y[i], pred[i])) for i in range(12)]
    assert ex["loci"][0]["r"] == pytest.approx(np.nanmax(r), abs=1e-5)
    assert ex["loci"][1]["r"] == pytest.approx(np.nanmin(r), abs=1e-5)
    asked = ex["loci"][2]  # the window with most overlap: 192-256
    assert (asked["chrom"], asked["start"], asked["end"]) == ("chrA", 192, 256)
    np.testing.assert_allclose(asked["target"][:, 0], y[6, :, 0])


def double_model(tmp_path) -> str:
    """The hand model with doubled weights (twice every prediction), saved."""
    from seqnn.model.build import save_model

    double = hand_model()
    double.set_weights([2 * w for w in double.get_weights()])
    save_model(double, tmp_path / "double.keras")
    return str(tmp_path / "double.keras")


def test_ensemble_of_models_and_predictions_h5(setup, tmp_path):
    root, data, x, y = setup
    double_model(tmp_path)
    evaluate([str(root / "model.keras"), str(tmp_path / "double.keras")], str(data),
             str(tmp_path / "out"), split="fold0", save_predictions=True)
    with h5py.File(tmp_path / "out/predictions.h5") as h5:
        np.testing.assert_allclose(h5["pred"][:], 1.5 * expected_prediction(x, [0], False),
                                   rtol=1e-3)
        np.testing.assert_array_equal(h5["target"][:], y)
        assert h5["start"][3] == 96 and h5["chrom"][0] == b"chrA"


def test_every_member_kept_bins_and_float16_predictions(setup, tmp_path):
    root, data, x, y = setup
    evaluate([str(root / "model.keras"), double_model(tmp_path)], str(data),
             str(tmp_path / "out"), split="fold0", rc=True, save_predictions=True,
             return_all=True, step=3, dtype="float16")
    one = expected_prediction(x, [0], False), expected_prediction(x, [0], True) * 2 \
        - expected_prediction(x, [0], False)  # forward, reverse-complement member
    members = np.stack([one[0], one[1], 2 * one[0], 2 * one[1]], 1)  # model-major
    pred = members.mean(1).astype(np.float16).astype(np.float32)
    with h5py.File(tmp_path / "out/predictions.h5") as h5:
        assert h5["bins"][:].tolist() == [0, 3, 6] and h5["pred"].dtype == np.float16
        np.testing.assert_allclose(h5["members"][:], members[:, :, ::3], rtol=1e-3)
        np.testing.assert_array_equal(h5["pred"][:], pred[:, ::3])
        np.testing.assert_array_equal(h5["target"][:], y[:, ::3])
    acc = pd.read_csv(tmp_path / "out/acc.tsv", sep="\t")  # metrics of all bins, downcast
    np.testing.assert_allclose(acc.pearsonr, pearsonr_np(y, pred), atol=2e-6)
    evaluate(str(root / "model.keras"), str(data), str(tmp_path / "s"), split="fold0",
             save_predictions=True, sample_bins=5, seed=2)
    with h5py.File(tmp_path / "s/predictions.h5") as h5:
        bins = h5["bins"][:]
        assert len(set(bins)) == 5 and h5["pred"].shape == (12, 5, 3)
        np.testing.assert_allclose(h5["pred"][:], expected_prediction(x, [0], False)[:, bins],
                                   rtol=1e-3)
    with pytest.raises(SeqnnError, match="model.keras: the model has no dropout layer"):
        evaluate(str(root / "model.keras"), str(data), str(tmp_path / "mc"), split="fold0",
                 mc_n=3)


def test_tss_regions_counted_and_correlated(setup, tmp_path):
    root, data, x, y = setup
    bed = tmp_path / "tss.bed"
    # 3 regions in windows, 1 on a chromosome absent from the genome, 1 past the last window
    bed.write_text("chrA\t40\t41\nchrA\t104\t105\nchrA\t296\t297\nchrZ\t5\t6\nchrA\t900\t901\n")
    summary = evaluate(str(root / "model.keras"), str(data), str(tmp_path), split="fold0",
                       tss=str(bed), tss_window=16)
    assert summary["tss"] == {"regions": 5, "absent_chrom": 1, "outside": 1, "used": 3}
    acc = pd.read_csv(tmp_path / "acc.tsv", sep="\t")
    assert acc.tss_genes.tolist() == [3, 3, 3]
    pred = expected_prediction(x, [0], False)
    # each 16-bp window lies in two windows (stride 32); the one with the nearest centre counts:
    # 32-48 in seq 0 (0-64), 96-112 in seq 2 (64-128), 288-304 in seq 8 (256-320), bins 4-5
    sums = []
    for seq, bin0 in ((0, 4), (2, 4), (8, 4)):
        sums.append([v[seq, bin0:bin0 + 2, 0].sum() for v in (y, pred)])
    t, p = np.log2(1 + np.array(sums)).T
    assert acc.tss_pearsonr[0] == pytest.approx(stats.pearsonr(t, p).statistic, abs=1e-6)


def test_bad_inputs(setup, tmp_path):
    root, data, _, _ = setup
    with pytest.raises(SeqnnError, match="split fold3 has no sequence"):
        evaluate(str(root / "model.keras"), str(data), str(tmp_path), split="fold3")
    small = keras.Sequential([keras.Input((32, 4)), keras.layers.Conv1D(3, 4, strides=4)])
    from seqnn.model.build import save_model

    save_model(small, tmp_path / "small.keras")
    with pytest.raises(SeqnnError, match="maps 32 bp to 8 bins x 3 tracks but .* seq_length 64"):
        evaluate(str(tmp_path / "small.keras"), str(data), str(tmp_path), split="fold0")
    with pytest.raises(SeqnnError, match="region 'chrA:9-2'"):
        evaluate(str(root / "model.keras"), str(data), str(tmp_path), split="fold0",
                 loci=["chrA:9-2"])


# ---------------------------------------------------------------------------------------------
# cv_summary on a hand-written two-fold case


def test_cv_summary_two_folds(tmp_path):
    def acc(name, pearsonr, r2):
        path = tmp_path / f"{name}.tsv"
        pd.DataFrame({"index": [0, 1], "identifier": ["x", "y"], "description": ["", ""],
                      "pearsonr": pearsonr, "r2": r2, "auc_labels": "none"}).to_csv(
            path, sep="\t", index=False)
        return str(path)

    table = cv_summary({"f0": acc("a", [0.5, 0.7], [0.1, np.nan]),
                        "f1": acc("b", [0.3, 0.9], [0.3, 0.5])},
                       ensemble={"f0": acc("c", [0.6, 0.8], [0.2, 0.2]),
                                 "f1": acc("d", [0.4, 1.0], [0.4, 0.6])},
                       out=str(tmp_path / "cv.tsv"))
    read = pd.read_csv(tmp_path / "cv.tsv", sep="\t")
    assert read.columns.tolist() == ["model", "identifier", "metric", "mean", "sem", "f0", "f1"]
    assert len(read) == len(table) == 12  # 2 models x 2 metrics x (2 tracks + all tracks)
    row = read.set_index(["model", "identifier", "metric"])
    assert row.loc[("single", "x", "pearsonr"), ["mean", "sem", "f0", "f1"]].tolist() == \
        pytest.approx([0.4, 0.1, 0.5, 0.3])
    # per fold: the mean over tracks; its mean and SEM over folds
    assert row.loc[("single", ALL_TRACKS, "pearsonr"), ["f0", "f1", "mean", "sem"]].tolist() == \
        pytest.approx([0.6, 0.6, 0.6, 0.0])
    # undefined values are left out: y's r2 is defined in one fold only
    assert row.loc[("single", "y", "r2"), "mean"] == pytest.approx(0.5)
    assert np.isnan(row.loc[("single", "y", "r2"), "sem"])
    assert row.loc[("single", ALL_TRACKS, "r2"), ["f0", "f1"]].tolist() == pytest.approx([0.1, 0.4])
    assert row.loc[("ensemble", "y", "pearsonr"), "mean"] == pytest.approx(0.9)
    with pytest.raises(SeqnnError, match="tracks differ"):
        bad = tmp_path / "bad.tsv"
        pd.read_csv(acc("e", [1, 1], [1, 1]), sep="\t").assign(identifier=["x", "z"]).to_csv(
            bad, sep="\t", index=False)
        cv_summary({"f0": acc("a", [0.5, 0.7], [0.1, 0.2]), "f1": str(bad)})


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_evaluate_writes_the_same_table(setup, tmp_path):
    root, data, _, _ = setup
    cli.main(["evaluate", str(root / "model.keras"), str(data), "--split", "fold0", "--rc",
              "--shifts", "-1,0,1", "-o", str(tmp_path / "cli")])
    evaluate(str(root / "model.keras"), str(data), str(tmp_path / "lib"), split="fold0", rc=True,
             shifts=[-1, 0, 1])
    assert (tmp_path / "cli/acc.tsv").read_text() == (tmp_path / "lib/acc.tsv").read_text()
    with pytest.raises(SystemExit):
        cli.main(["evaluate", str(root / "model.keras"), str(data), "-o", str(tmp_path / "x")])


@pytest.mark.yeast
def test_yeast_tss_regions_off_the_genome_are_counted(setup, yeast_dir, tmp_path):
    """TSSs.bed lists all 17 yeast chromosomes; the FASTA holds II, IV and XVI only."""
    root, _, _, _ = setup
    tss = pd.read_csv(yeast_dir / "TSSs.bed", sep="\t", header=None)
    on_ii = tss[tss[0] == "II"].sort_values(1).head(12)
    data = tmp_path / "data"
    _, x, y = write_data(data, n=12, split="test")
    starts = on_ii[1].to_numpy() - SEQ // 2
    (data / "sequences.bed").write_text("".join(f"II\t{s}\t{s + SEQ}\ttest\n" for s in starts))
    summary = evaluate(str(root / "model.keras"), str(data), str(tmp_path / "out"),
                       tss=str(yeast_dir / "TSSs.bed"), tss_window=16,
                       fai=str(yeast_dir / "yeast_II_IV_XVI.fa.fai"))
    absent = int((~tss[0].isin(["II", "IV", "XVI"])).sum())
    counts = summary["tss"]
    assert counts["regions"] == len(tss) == 6534 and counts["absent_chrom"] == absent == 4744
    assert counts["used"] >= 12 and counts["used"] + counts["outside"] == len(tss) - absent
    acc = pd.read_csv(tmp_path / "out/acc.tsv", sep="\t")
    assert (acc.tss_genes == counts["used"]).all() and acc.tss_pearsonr.notna().all()
