"""Gradients beyond the input aggregate: hidden layers (activations and gradients with respect
to them, RC/shift/model averaging), Borzoi-era statistics (untransform, log, ratio) against
central differences, the `center` window, Monte-Carlo dropout and every member of gradient
maps."""

import h5py
import keras
import numpy as np
import pysam
import pytest
from conftest import write_tiny_fasta

from seqnn import SeqnnError
from seqnn.apply import attribution as A
from seqnn.apply import interpret as I
from seqnn.apply import interpreter as IN
from seqnn.apply.hidden import layer_maps
from seqnn.data.coverage import untransform
from seqnn.data.dna import one_hot
from seqnn.model.build import save_model

L, PW, H = 64, 8, 6
T = L // PW
PAIR = [1, 0, 2]
SHEET = [{"identifier": "a", "strand_pair": 1, "sum_stat": "sum_sqrt", "scale": 2.0,
          "clip_soft": 1.5},
         {"identifier": "b", "strand_pair": 0, "sum_stat": "sum_sqrt", "scale": 2.0,
          "clip_soft": 1.5},
         {"identifier": "c", "strand_pair": 2, "sum_stat": "sum", "scale": 0.5,
          "clip_soft": None}]


def two_layer(seed=0, dropout=0.0):
    """x -> mean bases per 8 bp -> h = tanh(p A + a) ("h", [T, H]) -> softplus(h V + v)."""
    rng = np.random.default_rng(seed)
    x = keras.Input((L, 4), name="sequence")
    first = keras.layers.Dense(H, activation="tanh", name="h")
    last = keras.layers.Dense(3, activation="softplus", name="out")
    h = first(keras.layers.AveragePooling1D(PW)(x))
    if dropout:
        h = keras.layers.Dropout(dropout)(h)
    model = keras.Model(x, last(h))
    params = [rng.normal(size=s).astype(np.float32) for s in ((4, H), (H,), (H, 3), (3,))]
    first.set_weights(params[:2])
    last.set_weights(params[2:])
    return model, params


def numpy_forward(x, params):
    a, a0, v, v0 = params
    h = np.tanh(x.reshape(len(x), T, PW, 4).mean(2) @ a + a0)
    return h, np.logaddexp(0, h @ v + v0)


def x_random(n, seed=1):
    return one_hot(np.random.default_rng(seed).integers(0, 4, (n, L)))


def test_layer_gradients_and_activations_with_rc_and_two_models():
    x = x_random(3)
    (m0, p0), (m1, p1) = two_layer(0), two_layer(1)
    interp = IN.Interpreter([m0, m1], rc=True, strand_pair=PAIR, layer="h")
    assert interp.grad_shape == (T, H) and interp.members == 4
    agg = interp.aggregate(3, [0, 2], (2, 5))
    grads, values = interp.gradients(x, agg)
    want_g, want_h, want_a = 0, 0, 0
    for p in (p0, p1):
        for xv, rc in ((x, False), (x[:, ::-1, ::-1], True)):
            h, y = numpy_forward(xv, p)
            sig = 1 / (1 + np.exp(-(h @ p[2] + p[3])))  # d softplus
            w = np.zeros(T)
            w[[3, 4, 5] if rc else [2, 3, 4]] = 1  # the window mirrored on the RC strand
            tracks = [PAIR[0], PAIR[2]] if rc else [0, 2]
            g = np.einsum("b,nbk,ck->nbck", w, sig[..., tracks], p[2][:, tracks])
            want_g = want_g + (g[:, ::-1] if rc else g)
            want_h = want_h + (h[:, ::-1] if rc else h)
            want_a = want_a + np.einsum("b,nbk->nk", w, y[..., tracks])
    np.testing.assert_allclose(grads, want_g / 4, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(values, want_a / 4, rtol=1e-5)
    np.testing.assert_allclose(interp.hidden(x), want_h / 4, rtol=1e-5, atol=1e-6)
    with pytest.raises(SeqnnError, match="layer 'nope' is not in the model; choose one of"):
        IN.Interpreter([m0], layer="nope")


def test_layer_shift_moves_by_whole_positions():
    x = x_random(2)
    model, p = two_layer(2)
    interp = IN.Interpreter([model], shifts=[8], layer="h")  # one position of 8 bp
    xs = np.zeros_like(x)
    xs[:, 8:] = x[:, :-8]
    h, _ = numpy_forward(xs, p)
    want = np.zeros_like(h)
    want[:, :-1] = h[:, 1:]  # moved back; the last position has nothing
    np.testing.assert_allclose(interp.hidden(x), want, rtol=1e-5, atol=1e-6)


def statistic_numpy(y, stat, w, w_den, pseudo, sheet):
    """The statistic of predictions y [N, T, K] (untransform per track, then A, log, ratio)."""
    if sheet is not None:
        y = np.stack([untransform(y[..., t], s["sum_stat"], s["scale"], s["clip_soft"])
                      for t, s in enumerate(sheet)], -1)
    a, d = np.einsum("b,nbk->nk", w, y), np.einsum("b,nbk->nk", w_den, y)
    return {"aggregate": a, "log": np.log(a + pseudo),
            "ratio": np.log((a + pseudo) / (d + pseudo))}[stat]


@pytest.mark.parametrize("stat, sheet", [("aggregate", SHEET), ("log", None), ("log", SHEET),
                                         ("ratio", SHEET)])
def test_statistics_match_central_differences(stat, sheet):
    model, _ = two_layer(3)
    x = x_random(2, seed=4)
    params = None if sheet is None else A.untransform_params(sheet)
    statistic = A.Statistic(stat, pseudo=0.5, untransform=params)
    grads = IN.gradients([model], x, window=(2, 4), denominator=(0, T), statistic=statistic)
    w, w_den = np.zeros(T), np.ones(T)
    w[2:4] = 1
    direction = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
    eps = 1e-2

    def value(xv):
        return statistic_numpy(np.asarray(model(xv), np.float64), stat, w, w_den, 0.5, sheet)

    numeric = (value(x + eps * direction) - value(x - eps * direction)) / (2 * eps)
    analytic = np.einsum("nlc,nlck->nk", direction, grads)
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=1e-3)


def test_center_window_is_basenji_two_centre_bins():
    np.testing.assert_array_equal(A.bin_windows(2, 8, "center"), [[4, 6], [4, 6]])
    np.testing.assert_array_equal(A.bin_windows(1, 7, "center"), [[3, 5]])
    with pytest.raises(SeqnnError, match="window 'middle'"):
        A.bin_windows(1, 8, "middle")


def test_mc_dropout_gradients_average_to_the_plain_ones():
    # dropout after the tanh layer, linear head: E over masks of the gradient is the plain one
    model, _ = two_layer(6, dropout=0.3)
    lin = keras.Model(model.inputs, model.get_layer("out").input)  # up to the dropout output
    x = x_random(2, seed=7)
    plain = IN.gradients([lin], x)
    mc = IN.Interpreter([lin], mc_n=200, seed=1)
    members = list(mc.member_gradients(x, mc.aggregate(2)))
    assert len(members) == 200 and mc.members == 200
    g = np.mean([m for m, _ in members], 0)
    again = IN.Interpreter([lin], mc_n=200, seed=1)  # seeded: the same masks, averaged
    np.testing.assert_allclose(again.gradients(x, again.aggregate(2))[0], g, rtol=1e-4,
                               atol=1e-6)
    scale = np.abs(plain).max()
    assert np.abs(g - plain).max() < 0.1 * scale
    assert np.abs(members[0][0] - plain).max() > 0.05 * scale  # one pass is not the mean


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    d = tmp_path_factory.mktemp("hidden")
    fasta = write_tiny_fasta(d / "genome.fa")
    pysam.faidx(str(fasta))
    (d / "r.bed").write_text("chrI\t100\t140\tr1\t0\t+\nchrII\t500\t520\tr2\t0\t-\n")
    stats = {"seq_length": L, "pool_width": PW, "crop_bp": 0, "target_length": T,
             "num_targets": 3}
    paths = {}
    for name, dropout in (("plain", 0.0), ("mc", 0.3)):
        paths[name] = str(d / f"{name}.keras")
        save_model(two_layer(0, dropout)[0], paths[name], params={"model": {"seq_length": L}},
                   targets=SHEET, statistics=stats)
    return {"fasta": str(fasta), "bed": str(d / "r.bed"), **paths}


def test_layer_maps_and_every_member_of_gradient_maps(genome, tmp_path):
    out = str(tmp_path / "layer.h5")
    summary = layer_maps([genome["plain"]], genome["fasta"], genome["bed"], out, "h",
                         window="center", dtype="float32")
    assert summary["shape"] == [T, H] and summary["members"] == 2  # rc by default
    with h5py.File(out) as f:
        assert f["grads"].shape == (2, T, H, 3) and f["hidden"].shape == (2, T, H)
        assert f["bin_window"][:].tolist() == [[4, 6], [4, 6]] and f.attrs["layer_bp"] == PW
    grads = str(tmp_path / "g.h5")
    I.gradient_maps([genome["mc"]], genome["fasta"], genome["bed"], grads, rc=False, mc_n=3,
                    seed=2, return_all=True, dtype="float32", statistic="log",
                    untransform=True)
    with h5py.File(grads) as f:
        members = f["member_grads"][:]
        assert members.shape == (2, 3, L, 4, 3) and f.attrs["members"] == 3
        np.testing.assert_allclose(members.mean(1), f["grads"][:], rtol=1e-5, atol=1e-7)
        assert f.attrs["statistic"] == "log" and f.attrs["untransform"]
        assert not np.allclose(members[:, 0], members[:, 1])


def test_cli_interpret_layer_and_statistic(genome, tmp_path, capsys):
    import json

    from seqnn import cli

    cli.main(["interpret", genome["plain"], "--fasta", genome["fasta"], "--input",
              genome["bed"], "-o", str(tmp_path), "--layer", "h", "--window", "center",
              "--statistic", "ratio", "--untransform", "--pseudo", "0.5"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["layer"]["shape"] == [T, H] and summary["gradients"]["regions"] == 2
    with h5py.File(tmp_path / "gradients.h5") as f, h5py.File(tmp_path / "layer.h5") as g:
        assert f.attrs["statistic"] == g.attrs["statistic"] == "ratio"
        assert f.attrs["pseudo"] == 0.5 and f["bin_window"][0].tolist() == [4, 6]
        assert g["hidden"].shape == (2, T, H)
