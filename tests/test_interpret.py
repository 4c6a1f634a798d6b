"""Gradient maps and ISM against hand-made models whose answers are known.

The linear model y = W · x (a dense layer on the flattened one-hot) has the gradient W of any
aggregate, whatever the input, and ISM effects equal to gradient differences; the count model
counts A (track a) and T (track t, a's strand pair) per bin, so it is strand-symmetric; the
TATA model counts exact TATA motifs per bin, so every mutation's effect is a brute-force count.
"""

import itertools
import logging

import h5py
import keras
import numpy as np
import pyBigWig
import pysam
import pytest
from conftest import TINY_SIZES, write_tiny_fasta

from seqnn import SeqnnError
from seqnn import log as seqnn_log
from seqnn.apply import attribution as A
from seqnn.apply import interpret as I
from seqnn.apply import interpreter as IN
from seqnn.data.dna import N_CODE, encode, one_hot
from seqnn.model.build import save_model

L, PW = 64, 16
T_LEN = L // PW  # 4 bins; the default window is the centre two, (1, 3)
PAIR = [1, 0, 2]
TRACKS = [{"identifier": i, "strand_pair": p} for i, p in zip("atg", PAIR)]


def linear_model(seed=0, length=L, t_len=T_LEN, tracks=3):
    """y = W · x with W [length, 4, t_len, tracks] (returned too)."""
    w = np.random.default_rng(seed).normal(size=(length, 4, t_len, tracks)).astype(np.float32)
    x = keras.Input((length, 4))
    dense = keras.layers.Dense(t_len * tracks, use_bias=False)
    y = keras.layers.Reshape((t_len, tracks))(dense(keras.layers.Flatten()(x)))
    dense.set_weights([w.reshape(length * 4, t_len * tracks)])
    return keras.Model(x, y), w


def count_model():
    """Per bin: count of A (track a) and of T (track t)."""
    x = keras.Input((L, 4))
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(x, dense(keras.layers.AveragePooling1D(PW)(x)))
    w = np.zeros((4, 2), np.float32)
    w[0, 0] = w[3, 1] = PW
    dense.set_weights([w])
    return model


def tata_model(length=L):
    """Per bin of 8 bp: the number of exact TATA motifs starting in it."""
    x = keras.Input((length, 4))
    conv = keras.layers.Conv1D(1, 4, activation="relu")
    y = keras.layers.ZeroPadding1D((0, 3))(conv(x))
    model = keras.Model(x, keras.layers.Rescaling(8.0)(keras.layers.AveragePooling1D(8)(y)))
    conv.set_weights([one_hot(encode("TATA"))[:, :, None], np.array([-3.0], np.float32)])
    return model


def smooth_model(seed=0):
    """A small random non-linear model (conv, relu, pooling, dense, softplus)."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((L, 4))
    h = keras.layers.Conv1D(8, 5, padding="same", activation="relu")(x)
    h = keras.layers.Dense(3, activation="softplus")(keras.layers.AveragePooling1D(PW)(h))
    return keras.Model(x, h)


def random_x(n, length=L, seed=1):
    return one_hot(np.random.default_rng(seed).integers(0, 4, (n, length)))


def window_grad(w, b0, b1, track):
    return w[:, :, b0:b1, track].sum(2)


def rc_of(a):
    return a[::-1, ::-1]


def shifted_back(g, s):
    """g'[i] = g[i + s] (0 where i + s is off the sequence)."""
    out = np.zeros_like(g)
    for i in range(len(g)):
        if 0 <= i + s < len(g):
            out[i] = g[i + s]
    return out


# ---------------------------------------------------------------------------------------------
# Gradients


def test_linear_gradients_are_the_weights_centred_and_per_sequence():
    model, w = linear_model()
    x = random_x(5)
    g = IN.gradients([model], x, tracks=[0, 2], window=(1, 3), batch_size=2)
    assert g.shape == (5, L, 4, 2)
    want = np.stack([window_grad(w, 1, 3, 0), window_grad(w, 1, 3, 2)], -1)
    np.testing.assert_allclose(g, np.broadcast_to(want, g.shape), rtol=1e-5, atol=1e-5)
    mean = IN.gradients([model], x[:1], tracks=1, window=3, reduce="mean")[0, ..., 0]
    np.testing.assert_allclose(mean, w[:, :, 0:3, 1].mean(2), rtol=1e-5, atol=1e-5)
    # default: all tracks, centre bins (1, 3); centring, contributions, saliency
    g = IN.gradients([model], x)
    np.testing.assert_allclose(g[0, ..., 1], window_grad(w, 1, 3, 1), rtol=1e-5, atol=1e-5)
    centred = want - want.mean(1, keepdims=True)
    np.testing.assert_allclose(A.centre_bases(g[:, ..., [0, 2]]), np.broadcast_to(
        centred, (5, *centred.shape)), rtol=1e-5, atol=1e-5)
    base = x.argmax(-1)
    contrib = A.input_x_gradient(x, g)
    for i in range(5):
        np.testing.assert_allclose(contrib[i, :, [0, 2]].T, centred[np.arange(L), base[i]],
                                   rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(A.saliency(g, x, "observed")[1, :, 0],
                               want[np.arange(L), base[1], 0], rtol=1e-5)
    np.testing.assert_allclose(A.saliency(g, mode="abs_max")[0, :, 0],
                               np.abs(want[..., 0]).max(1), rtol=1e-5)
    with pytest.raises(SeqnnError, match="saliency"):
        A.saliency(g, mode="observed")
    # per-sequence windows and tracks
    g = IN.gradients([model], x[:3], window=[[0, 1], [1, 3], [2, 4]], tracks=[[0], [1], [2]])
    for i, (b0, b1) in enumerate([(0, 1), (1, 3), (2, 4)]):
        np.testing.assert_allclose(g[i, ..., 0], window_grad(w, b0, b1, i), rtol=1e-5, atol=1e-5)
    for bad, match in [({"window": (3, 3)}, "bin window"), ({"window": 9}, "window of 9"),
                       ({"tracks": 3}, "track index 3")]:
        with pytest.raises(SeqnnError, match=match):
            IN.gradients([model], x, **bad)


def test_reverse_complement_averaging_is_exact_and_strand_symmetric():
    # a strand-symmetric model: the RC member repeats the forward gradient (1 at A in the bins)
    want = np.zeros((L, 4))
    want[PW : 3 * PW, 0] = 1
    x = random_x(2)
    for rc in (False, True):
        g = IN.gradients([count_model()], x, tracks=0, rc=rc, strand_pair=[1, 0])
        np.testing.assert_allclose(g[:, ..., 0], np.broadcast_to(want, (2, L, 4)), atol=1e-6)
    # any model: the RC member reads the mirrored window of the paired track, flipped back
    model, w = linear_model(seed=2)
    g = IN.gradients([model], x, window=(0, 1), rc=True, strand_pair=PAIR)[0]
    for t in range(3):
        want = (window_grad(w, 0, 1, t) + rc_of(window_grad(w, 3, 4, PAIR[t]))) / 2
        np.testing.assert_allclose(g[..., t], want, rtol=1e-5, atol=1e-5)
    # a mirror-symmetric window: RC-averaged maps satisfy g_t == rc_of(g_pair(t))
    g = IN.gradients([model], x, rc=True, strand_pair=PAIR)[0]
    for t in range(3):
        np.testing.assert_allclose(g[..., t], rc_of(g[..., PAIR[t]]), rtol=1e-5, atol=1e-5)
    # and for a non-linear model, the maps of x and of its reverse complement mirror each other
    smooth = smooth_model()
    both = np.concatenate([x[:1], x[:1, ::-1, ::-1]])
    g = IN.gradients([smooth], both, rc=True, strand_pair=PAIR)
    for t in range(3):
        np.testing.assert_allclose(g[1, ..., t], rc_of(g[0, ..., PAIR[t]]), rtol=1e-4, atol=1e-6)


def test_shift_and_model_averaging():
    (m1, w1), (m2, w2) = linear_model(seed=3), linear_model(seed=4)
    x = random_x(2)
    g = IN.gradients([m1, m2], x, tracks=2, shifts=(-1, 0, 2))[:, ..., 0]
    want = np.mean([shifted_back(window_grad(w, 1, 3, 2), s)
                    for w in (w1, w2) for s in (-1, 0, 2)], 0)
    np.testing.assert_allclose(g, np.broadcast_to(want, g.shape), rtol=1e-5, atol=1e-5)
    # shift 2 moves the last two bases off the sequence: only shifts -1 and 0 see them
    np.testing.assert_allclose(g[0, -1], (window_grad(w1, 1, 3, 2)[-2] + window_grad(
        w1, 1, 3, 2)[-1] + window_grad(w2, 1, 3, 2)[-2] + window_grad(w2, 1, 3, 2)[-1]) / 6,
        rtol=1e-5, atol=1e-5)
    interp = IN.Interpreter([m1, m2], rc=True, shifts=(-1, 0, 2))
    assert interp.members == 12


# ---------------------------------------------------------------------------------------------
# ISM


def motif_counts(codes, lo, hi):
    """Number of TATA motifs starting in [lo, hi) of a code sequence (brute force)."""
    seq = "".join("ACGTN"[c] for c in codes)
    return sum(seq.startswith("TATA", p) for p in range(lo, min(hi, len(seq) - 3)))


def test_ism_counts_exact_motif_changes():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 3, L).astype(np.uint8)  # A, C, G only: no TATA by chance
    codes[30:34] = encode("TATA")
    codes[36:40] = encode("TATG")  # one substitution away from a second motif
    codes[45] = N_CODE
    x = one_hot(codes)[None]
    start, width, window = 24, 24, (4, 6)  # 8 bp bins: the window is bp 32..47
    model = tata_model()
    for rc in (False, True):
        out = IN.saturation_mutagenesis([model], x, start=start, width=width, window=window,
                                       rc=rc, batch_size=17)
        assert out["centre"].shape == (1, width, 4, 1)

        def counts(c, lo, hi, rc=rc):
            n = motif_counts(c, lo, hi)
            if rc:  # the RC member counts motifs of the reverse complement in the mirrored bins
                r = np.where(c < 4, 3 - c, 4)[::-1]
                n = (n + motif_counts(r, L - hi, L - lo)) / 2
            return n

        ref_c, ref_s = counts(codes, 32, 48), counts(codes, 0, L)
        assert out["ref"][0, 0] == ref_c and out["ref_sum"][0, 0] == ref_s
        for j in range(width):
            p = start + j
            for b in range(4):
                if b == codes[p]:
                    assert out["centre"][0, j, b, 0] == out["sum"][0, j, b, 0] == 0
                    continue
                mut = codes.copy()
                mut[p] = b
                alt_c = counts(mut, 32, 48)
                assert out["centre"][0, j, b, 0] == alt_c - ref_c, (rc, p, b)
                assert out["sum"][0, j, b, 0] == counts(mut, 0, L) - ref_s, (rc, p, b)
                np.testing.assert_allclose(out["logfc"][0, j, b, 0],
                                           np.log2((alt_c + 1) / (ref_c + 1)), rtol=1e-6)
        if not rc:
            # TATA at 30 starts before the window: destroying it changes `sum` only; the
            # G of TATG at 39 -> A makes a motif starting at 36, inside the window
            for p in range(30, 34):
                alts = np.arange(4) != codes[p]
                assert (out["sum"][0, p - start, alts] == -1).all()
                assert (out["centre"][0, p - start] == 0).all()
            assert out["centre"][0, 39 - start, 0, 0] == 1
            assert (out["centre"][0, 45 - start, :, 0] == 0).all()  # N: four alternatives


def test_ism_of_linear_model_is_gradient_difference_under_augmentation():
    model, _ = linear_model(seed=6)
    x = random_x(3, seed=7)
    x[1, 20] = 0  # an N: all four bases are alternatives
    kw = {"rc": True, "shifts": (-2, 0, 1), "strand_pair": PAIR, "tracks": [2, 0]}
    g = IN.gradients([model], x, **kw)
    out = IN.saturation_mutagenesis([model], x, start=10, width=30, pseudo=2.0, **kw)
    g = g[:, 10:40]
    want = g - (g * x[:, 10:40, :, None]).sum(2, keepdims=True)
    np.testing.assert_allclose(out["centre"], want, rtol=1e-4, atol=1e-4)
    whole = IN.gradients([model], x, window=(0, T_LEN), **kw)[:, 10:40]
    want = whole - (whole * x[:, 10:40, :, None]).sum(2, keepdims=True)
    np.testing.assert_allclose(out["sum"], want, rtol=1e-4, atol=1e-4)
    assert (out["centre"][1, 10, :, 0] != 0).all()
    with pytest.raises(SeqnnError, match="ISM window"):
        IN.saturation_mutagenesis([model], x, start=50, width=30)


def test_ism_agrees_in_sign_with_gradients_at_the_strongest_positions():
    model = smooth_model(seed=3)
    x = random_x(4, seed=8)
    g = IN.gradients([model], x, tracks=1)[..., 0]
    first_order = g - (g * x).sum(-1, keepdims=True)  # g[alt] - g[ref]
    out = IN.saturation_mutagenesis([model], x, start=0, width=L, tracks=1)["centre"][..., 0]
    strongest = np.argsort(-np.abs(out).ravel())[:40]
    agree = np.sign(out.ravel()[strongest]) == np.sign(first_order.ravel()[strongest])
    assert agree.mean() >= 0.9, agree.mean()


# ---------------------------------------------------------------------------------------------
# Regions, HDF5 and bigWigs


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    d = tmp_path_factory.mktemp("interpret")
    fasta = write_tiny_fasta(d / "genome.fa")
    pysam.faidx(str(fasta))
    with pysam.FastaFile(str(fasta)) as fa:
        codes = {c: encode(fa.fetch(c)) for c in fa.references}
    model, w = linear_model(seed=9)
    path = d / "linear.keras"
    save_model(model, path, params={"model": {"seq_length": L}}, targets=TRACKS,
               statistics={"seq_length": L, "pool_width": PW, "crop_bp": 0,
                           "target_length": T_LEN, "num_targets": 3})
    bed = d / "regions.bed"
    bed.write_text("chrI\t100\t140\tr1\t0\t+\n"      # window 88..152
                   "chrI\t130\t150\tr2\t0\t-\n"      # window 108..172, overlaps r1
                   "chrZ\t5\t10\toff\t0\t+\n"        # not in the FASTA
                   "chrIII\t1990\t2000\tr5\t0\t-\n"  # window 1963..2027 passes the end
                   "chrII\t0\t10\tr3\t0\t+\n")       # window -27..37 starts before it
    return {"dir": d, "fasta": str(fasta), "codes": codes, "model": str(path), "w": w,
            "bed": str(bed)}


def window_codes(codes, start, length=L):
    out = np.full(length, N_CODE, np.uint8)
    lo, hi = max(start, 0), min(start + length, len(codes))
    out[lo - start : hi - start] = codes[lo:hi]
    return out


def test_gradient_maps_h5_and_bigwigs(genome, tmp_path, caplog):
    out, bw_dir = tmp_path / "grads.h5", tmp_path / "bw"
    summary = I.gradient_maps([genome["model"]], genome["fasta"], genome["bed"], str(out),
                              tracks=["g", "a"], rc=False, batch_size=3, dtype="float32",
                              bigwig_dir=str(bw_dir))
    assert summary["regions"] == 4 and summary["skipped"] == 1 and summary["tracks"] == ["g", "a"]
    assert "1 region(s) on 1 chromosome(s) not in the genome skipped (chrZ)" in caplog.text
    w = genome["w"]
    want = np.stack([window_grad(w, 1, 3, 2), window_grad(w, 1, 3, 0)], -1)
    starts = [88, 108, 1963, -27]
    chroms = ["chrI", "chrI", "chrIII", "chrII"]
    with h5py.File(out) as f:
        assert f.attrs["skipped"] == 1 and f.attrs["reduce"] == "sum" and not f.attrs["rc"]
        assert f["chrom"][:].astype(str).tolist() == chroms
        assert f["name"][:].astype(str).tolist() == ["r1", "r2", "r5", "r3"]
        assert f["strand"][:].astype(str).tolist() == ["+", "-", "-", "+"]
        np.testing.assert_array_equal(f["start"][:], starts)
        np.testing.assert_array_equal(f["end"][:], np.add(starts, L))
        assert f["identifiers"][:].astype(str).tolist() == ["g", "a"]
        np.testing.assert_array_equal(f["track_index"][:], [[2, 0]] * 4)
        np.testing.assert_array_equal(f["bin_window"][:], [[1, 3]] * 4)
        seqs, grads = f["seqs"][:], f["grads"][:]
        assert seqs.dtype == np.uint8 and grads.shape == (4, L, 4, 2)
        for i, (c, s) in enumerate(zip(chroms, starts)):
            np.testing.assert_array_equal(seqs[i], one_hot(window_codes(genome["codes"][c], s)))
            np.testing.assert_allclose(grads[i], want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(f["aggregate"][i], np.einsum(
                "lc,lck->k", seqs[i], want), rtol=1e-4, atol=1e-4)
    centred = want - want.mean(1, keepdims=True)
    for k, track in enumerate(["g", "a"]):
        with pyBigWig.open(str(bw_dir / f"{track}.bw")) as bw:
            assert bw.chroms() == TINY_SIZES
            for chrom, rows, lo, hi in [("chrI", [0, 1], 88, 172), ("chrIII", [2], 1963, 2000),
                                        ("chrII", [3], 0, 37)]:
                entries = np.array(bw.intervals(chrom))
                np.testing.assert_array_equal(entries[:, 0], np.arange(lo, hi))  # each base once
                np.testing.assert_array_equal(entries[:, 1], np.arange(lo, hi) + 1)
                for p, value in zip(range(lo, hi), entries[:, 2]):
                    # nearest window centre (88 + 32 = 120 vs 140): bases up to 129 from r1
                    i = rows[0] if len(rows) == 1 or p <= 129 else rows[1]
                    base = window_codes(genome["codes"][chrom], starts[i])[p - starts[i]]
                    expect = 0.0 if base == N_CODE else centred[p - starts[i], base, k]
                    assert value == pytest.approx(expect, rel=1e-5, abs=1e-5), (chrom, p)
    # the same bigWigs again, standalone from the file
    I.write_contribution_bigwigs(str(out), str(tmp_path / "again"), {c: c for c in TINY_SIZES},
                                 TINY_SIZES)
    for track in ["g", "a"]:
        with pyBigWig.open(str(bw_dir / f"{track}.bw")) as a, \
                pyBigWig.open(str(tmp_path / "again" / f"{track}.bw")) as b:
            assert all(a.intervals(c) == b.intervals(c) for c in TINY_SIZES)


def test_tss_mode_takes_the_gene_strand_track_and_window(genome, tmp_path):
    out = tmp_path / "tss.h5"
    summary = I.gradient_maps([genome["model"]], genome["fasta"], genome["bed"], str(out),
                              tracks="a", tss=True, window=(0, 2), reduce="mean")
    assert summary["members"] == 2  # rc on by default
    w = genome["w"]

    def rc_avg(b0, b1, t):
        return (w[:, :, b0:b1, t].mean(2) + rc_of(w[:, :, T_LEN - b1 : T_LEN - b0, PAIR[t]]
                                              .mean(2))) / 2

    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["start"][:], np.array([100, 149, 1999, 0]) - L // 2)
        np.testing.assert_array_equal(f["track_index"][:, 0], [0, 1, 1, 0])
        assert f["grads"].dtype == np.float16 and f.attrs["tss"]
        for i, t in enumerate([0, 1, 1, 0]):
            np.testing.assert_allclose(f["grads"][i, ..., 0], rc_avg(0, 2, t), rtol=2e-3,
                                       atol=2e-3)
    # a width in bins is centred on the TSS bin
    assert A.tss_windows(np.array([32, 0, 63]), T_LEN, PW, 0, 2).tolist() == [[1, 3], [0, 2],
                                                                            [2, 4]]


def test_ism_h5(genome, tmp_path):
    out = tmp_path / "ism.h5"
    summary = I.ism([genome["model"]], genome["fasta"], genome["bed"], str(out), window_bp=10,
                    tracks=[1], batch_size=7)
    assert summary["substitutions"] == 4 * 10 * 3 and summary["skipped"] == 1
    w = genome["w"]
    g = (window_grad(w, 1, 3, 1) + rc_of(window_grad(w, 1, 3, 0))) / 2
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["start"][:], np.array([88, 108, 1963, -27]) + 27)
        np.testing.assert_array_equal(f["end"][:] - f["start"][:], 10)
        np.testing.assert_array_equal(f["seq_start"][:], [88, 108, 1963, -27])
        assert f["centre"].shape == (4, 10, 4, 1) and f.attrs["width"] == 10
        for i in range(4):
            x = f["seqs"][i].astype(np.float32)
            want = g[27:37] - (g[27:37] * x).sum(1, keepdims=True)
            np.testing.assert_allclose(f["centre"][i, ..., 0], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(f["seqs"][3], one_hot(genome["codes"]["chrII"][:10]))


def test_progress_lines_count_every_region(genome, tmp_path, monkeypatch, caplog):
    """Gradients and ISM log a line per batch past the interval (a clock 31 s on per read) and
    a summary; the last count is the number of regions on the genome."""
    ticks = itertools.count(0, 31)
    monkeypatch.setattr(seqnn_log, "perf_counter", lambda: next(ticks))
    caplog.set_level(logging.INFO, "seqnn")
    I.gradient_maps([genome["model"]], genome["fasta"], genome["bed"], str(tmp_path / "g.h5"),
                    batch_size=3)
    I.ism([genome["model"]], genome["fasta"], genome["bed"], str(tmp_path / "i.h5"),
          window_bp=4, batch_size=7)
    assert [r.getMessage() for r in caplog.records if r.module == "log"] == [
        "gradients: 3/4 regions (75%), 0.0968/s, ETA 10s",
        "gradients: 4/4 regions (100%), 0.0645/s, ETA 0s",
        "gradients: 4 regions in 93.0 s (0.043/s)",
        "ism: 4/4 regions (100%), 0.129/s, ETA 0s",
        "ism: 4 regions in 62.0 s (0.0645/s)"]


def test_regions_off_the_genome_are_reported(genome, tmp_path):
    with pytest.raises(SeqnnError, match=r"1 region\(s\) on chromosome\(s\) absent from the "
                                         r"FASTA \(chrZ\)"):
        I.gradient_maps([genome["model"]], genome["fasta"], genome["bed"],
                        str(tmp_path / "x.h5"), missing="error")
    assert not (tmp_path / "x.h5").exists()
    bed = tmp_path / "off.bed"
    bed.write_text("chrZ\t5\t10\n")
    with pytest.raises(SeqnnError, match="no region lies on a chromosome of the genome"):
        I.ism([genome["model"]], genome["fasta"], str(bed), str(tmp_path / "y.h5"))
    with pytest.raises(SeqnnError, match="track 'zz' is neither an identifier nor an index"):
        I.gradient_maps([genome["model"]], genome["fasta"], genome["bed"],
                        str(tmp_path / "z.h5"), tracks="zz")
