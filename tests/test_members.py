"""Members beyond models x augmentations: Monte-Carlo dropout against the analytic moments of a
hand-made model, downcast and kept bins against numpy, and every member of per-window
predictions (`seqnn.apply.windows`) against direct model calls."""

import h5py
import ml_dtypes
import numpy as np
import pysam
import pytest
from conftest import write_tiny_fasta

from seqnn import SeqnnError
from seqnn.apply import outputs as O
from seqnn.apply.dropout import mc_dropout
from seqnn.apply.windows import predict_windows
from seqnn.data.dna import one_hot

keras = pytest.importorskip("keras")

from seqnn.model.augment import StochasticShift  # noqa: E402
from seqnn.model.build import save_model  # noqa: E402

L, PW, P = 64, 8, 0.4  # window, bin width, dropout rate
T = L // PW
W = np.array([[1.0, 0, 0.5], [0, 2, 0], [0, 0, 1], [0, 1, -1]], np.float32)  # [base, track]
BN = {"gamma": 2.0, "beta": 0.25, "mean": 0.25, "var": 0.04}  # eps 1e-3
TRACKS = [{"identifier": f"t{i}", "strand_pair": i, "sum_stat": "sum", "scale": 1.0,
           "clip_soft": None} for i in range(3)]


def hand_model(rate=P):
    """Shift augmentation (off at inference), mean base content per bin, batch norm with set
    moving statistics, dropout, a dense layer W."""
    x = keras.Input((L, 4), name="sequence")
    h = keras.layers.AveragePooling1D(PW)(StochasticShift(3)(x))
    norm = keras.layers.BatchNormalization(epsilon=1e-3)
    h = norm(h)
    if rate:
        h = keras.layers.Dropout(rate)(h)
    dense = keras.layers.Dense(3, use_bias=False)
    model = keras.Model(x, dense(h))
    norm.set_weights([np.full(4, BN[k], np.float32) for k in ("gamma", "beta", "mean", "var")])
    dense.set_weights([W])
    return model


def normed(x):
    """The batch-normalised pooled input [N, T, 4] (inference: moving statistics)."""
    pooled = x.reshape(len(x), T, PW, 4).mean(2)
    return BN["gamma"] * (pooled - BN["mean"]) / np.sqrt(BN["var"] + 1e-3) + BN["beta"]


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    d = tmp_path_factory.mktemp("members")
    fasta = write_tiny_fasta(d / "genome.fa")
    pysam.faidx(str(fasta))
    (d / "regions.bed").write_text("chrI\t100\t200\tr1\nchrII\t1000\t1010\tr2\n"
                                   "chrIII\t500\t600\tr3\n")
    with pysam.FastaFile(str(fasta)) as fa:
        x = one_hot(np.stack([
            np.searchsorted(np.frombuffer(b"ACGT", np.uint8),
                            np.frombuffer(fa.fetch(c, m - L // 2, m + L // 2).encode(), np.uint8))
            for c, m in (("chrI", 150), ("chrII", 1005), ("chrIII", 550))]).astype(np.uint8))
    paths = {}
    for name, rate in (("mc", P), ("plain", 0)):
        paths[name] = str(d / f"{name}.keras")
        save_model(hand_model(rate), paths[name], params={"model": {"seq_length": L}},
                   targets=TRACKS, statistics={"seq_length": L, "pool_width": PW, "crop_bp": 0,
                                               "target_length": T, "num_targets": 3})
    return {"dir": d, "fasta": str(fasta), "bed": str(d / "regions.bed"), "x": x, **paths}


def test_downcast_rounds_as_numpy_and_stops_at_float16_overflow():
    v = np.random.default_rng(0).normal(0, 300, 1000).astype(np.float32)
    np.testing.assert_array_equal(O.downcast(v, "float16"), v.astype(np.float16))
    assert O.downcast(v, "float16").dtype == np.float16
    bf = O.downcast(v, "bfloat16")
    assert bf.dtype == np.float32
    np.testing.assert_array_equal(bf, v.astype(ml_dtypes.bfloat16).astype(np.float32))
    big = np.array([1.0, 7e4, 3e38], np.float32)
    np.testing.assert_array_equal(O.downcast(big, "bfloat16"),
                                  big.astype(ml_dtypes.bfloat16).astype(np.float32))
    with pytest.raises(SeqnnError, match="7e\\+04 exceeds float16's largest, 65,504.*bfloat16"):
        O.downcast(big[:2], "float16")
    with pytest.raises(SeqnnError, match="dtype 'int8' is not one of"):
        O.downcast(v, "int8")


def test_positions_step_and_seeded_sample():
    np.testing.assert_array_equal(O.positions(10, 3), [0, 3, 6, 9])
    s = O.positions(100, sample=20, seed=5)
    assert len(np.unique(s)) == 20 and (np.diff(s) > 0).all() and s.max() < 100
    np.testing.assert_array_equal(s, O.positions(100, sample=20, seed=5))
    assert not np.array_equal(s, O.positions(100, sample=20, seed=6))
    with pytest.raises(SeqnnError, match="give one of them"):
        O.positions(10, 2, 3)
    with pytest.raises(SeqnnError, match="sample 11: need 1..10"):
        O.positions(10, sample=11)


def test_mc_dropout_moments_match_the_analytic_ones(genome, tmp_path):
    # Inverted dropout keeps the mean: E[y] = z W (z: batch-normed input with moving statistics,
    # augmentation off), Var[y_t] = p / (1 - p) sum_c z_c^2 W_ct^2.
    z = normed(genome["x"])
    mean, var = z @ W, (z**2 @ W**2) * P / (1 - P)
    out = str(tmp_path / "w.h5")
    n = 400
    summary = predict_windows([genome["mc"]], genome["fasta"], genome["bed"], out, mc_n=n,
                              seed=3, untransform=False, variance=True, return_all=True)
    assert summary["members"] == n
    with h5py.File(out) as f:
        pred, v, members = f["pred"][:], f["variance"][:], f["members"][:]
        assert f["bins"][:].tolist() == list(range(T)) and f.attrs["mc_n"] == n
    assert members.shape == (3, n, T, 3)
    np.testing.assert_allclose(members.mean(1), pred, atol=1e-5)
    np.testing.assert_allclose(members.var(1), v, rtol=1e-3, atol=1e-5)
    assert (np.abs(pred - mean) <= 5 * np.sqrt(var / n) + 1e-4).all()
    assert v.sum() / var.sum() == pytest.approx(1, abs=0.1)
    again = str(tmp_path / "again.h5")
    predict_windows([genome["mc"]], genome["fasta"], genome["bed"], again, mc_n=5, seed=3,
                    untransform=False, return_all=True)
    other = str(tmp_path / "other.h5")
    predict_windows([genome["mc"]], genome["fasta"], genome["bed"], other, mc_n=5, seed=4,
                    untransform=False, return_all=True)
    with h5py.File(again) as a, h5py.File(other) as b:
        np.testing.assert_array_equal(a["members"][:], members[:, :5])  # seeded
        assert not np.allclose(b["members"][:], members[:, :5])
    plain = str(tmp_path / "plain.h5")
    predict_windows([genome["mc"]], genome["fasta"], genome["bed"], plain, untransform=False)
    with h5py.File(plain) as f:
        np.testing.assert_allclose(f["pred"][:], mean, rtol=1e-5, atol=1e-5)


def test_mc_dropout_needs_dropout_and_shares_weights(genome, tmp_path):
    with pytest.raises(SeqnnError, match="plain.keras: the model has no dropout layer"):
        predict_windows([genome["plain"]], genome["fasta"], genome["bed"],
                        str(tmp_path / "x.h5"), mc_n=2)
    model = hand_model()
    mc = mc_dropout(model, seed=0)
    assert [id(w) for w in mc.weights] == [id(w) for w in model.weights]


def test_every_member_with_rc_step_and_dtype(genome, tmp_path):
    # models x shifts x strands, model-major: members of the plain model, rc, shifts 0 and 1
    x = genome["x"]
    model = hand_model(0)
    out = str(tmp_path / "w.h5")
    predict_windows([genome["plain"], genome["plain"]], genome["fasta"], genome["bed"], out,
                    rc=True, shifts=[0, 1], return_all=True, untransform=False, step=3,
                    dtype="float16")
    want = []
    for s in (0, 1):
        xs = np.zeros_like(x)
        xs[:, s:] = x[:, : L - s]
        want.append(np.asarray(model(xs)))
        want.append(np.asarray(model(xs[:, ::-1, ::-1]))[:, ::-1])
    want = np.stack(want * 2, 1)[:, :, ::3]
    with h5py.File(out) as f:
        assert f["bins"][:].tolist() == [0, 3, 6] and f["pred"].dtype == np.float16
        assert f.attrs["members"] == 8 and f.attrs["dtype"] == "float16"
        np.testing.assert_array_equal(f["members"][:], want.astype(np.float16))
        np.testing.assert_allclose(f["pred"][:], want.mean(1), rtol=1e-3, atol=1e-3)
        assert f["window_start"][:].tolist() == [150 - L // 2, 1005 - L // 2, 550 - L // 2]


def test_predict_shard_downcast_and_mc_members(genome, tmp_path):
    from seqnn.apply.predict import predict_shard

    runs = {}
    for name, kw in (("f32", {}), ("f16", {"dtype": "float16"}),
                     ("mc", {"mc_n": 3, "variance": True})):
        path = str(tmp_path / f"{name}.h5")
        summary = predict_shard([genome["mc"] if name == "mc" else genome["plain"]],
                                genome["fasta"], path, untransform=False, **kw)
        with h5py.File(path) as f:
            runs[name] = {k: f[k][:] for k in ("values", "variance") if k in f}
    assert summary["members"] == 3
    assert runs["f16"]["values"].dtype == np.float16
    np.testing.assert_array_equal(runs["f16"]["values"], runs["f32"]["values"].astype(np.float16))
    # members differ; expected fraction 0.87 (0.863 measured): track t0 reads one unit, so 3
    # passes keep or drop it alike with p 0.6^3 + 0.4^3 = 0.28, t1 two units (0.08), t2 three
    assert (runs["mc"]["variance"] > 0).mean() > 0.75
    big = str(tmp_path / "big.keras")
    model = hand_model(0)
    model.layers[-1].set_weights([W * 1e5])
    save_model(model, big, params={"model": {"seq_length": L}}, targets=TRACKS,
               statistics={"seq_length": L, "pool_width": PW, "crop_bp": 0, "target_length": T,
                           "num_targets": 3})
    with pytest.raises(SeqnnError, match="exceeds float16's largest, 65,504"):
        predict_shard([big], genome["fasta"], str(tmp_path / "x.h5"), untransform=False,
                      dtype="float16")


def test_cli_predict_windows(genome, tmp_path, capsys):
    import json

    from seqnn import cli

    out = tmp_path / "out"
    cli.main(["predict", genome["mc"], "--fasta", genome["fasta"], "-o", str(out),
              "--windows", genome["bed"], "--mc-n", "2", "--seed", "5", "--step", "2",
              "--return-all", "--transformed", "--dtype", "bfloat16"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["windows"] == {"windows": 3, "members": 2, "bins": T // 2,
                                  "tracks": ["t0", "t1", "t2"], "dtype": "bfloat16"}
    direct = str(tmp_path / "direct.h5")
    predict_windows([genome["mc"]], genome["fasta"], genome["bed"], direct, mc_n=2, seed=5,
                    step=2, return_all=True, untransform=False, dtype="bfloat16")
    with h5py.File(out / "windows.h5") as a, h5py.File(direct) as b:
        np.testing.assert_array_equal(a["members"][:], b["members"][:])
        np.testing.assert_array_equal(a["pred"][:], O.round_bfloat16(a["pred"][:]))
    assert (out / "t0.bw").exists()
