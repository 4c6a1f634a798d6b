"""Layer and filter access, PWMs of filters, MEME files and the `seqnn filters` command against
a hand-made model whose filters are known motifs."""

import json

import numpy as np
import pytest

from seqnn import SeqnnError, cli
from seqnn.apply import filters as F
from seqnn.data.dna import encode, one_hot

keras = pytest.importorskip("keras")

from seqnn.model import inspect as MI  # noqa: E402
from seqnn.model.build import save_model  # noqa: E402

MOTIFS = ["TGACGCATCA", "CCAATGGCGT", "TATAAAGGCA"]


def motif_model(scale=2.0):
    """conv(12 bp: each motif's one-hot x scale, centred, then a blank filter) -> BN -> dense."""
    x = keras.Input((64, 4), name="sequence")
    conv = keras.layers.Conv1D(4, 12, name="conv_first")
    h = keras.layers.BatchNormalization(name="bn")(conv(x))
    h = keras.layers.Conv1D(2, 3, name="conv_second")(h)
    model = keras.Model(x, keras.layers.Dense(1, name="head")(h))
    kernel = np.zeros((12, 4, 4), np.float32)
    for f, m in enumerate(MOTIFS):
        kernel[1:11, :, f] = scale * one_hot(encode(m))
    conv.set_weights([kernel, np.zeros(4, np.float32)])
    return model, kernel


def test_layers_by_kind_index_and_name():
    model, kernel = motif_model()
    assert [layer.name for layer in MI.layers_of(model, "conv")] == ["conv_first", "conv_second"]
    assert MI.get_layer(model, "bn").name == "bn"
    assert MI.get_layer(model, "dense").name == "head"
    assert MI.get_layer(model, "conv", 1).name == "conv_second"
    assert MI.get_layer(model, name="bn").name == "bn"
    np.testing.assert_array_equal(MI.conv_weights(model), np.transpose(kernel, (2, 0, 1)))
    assert MI.conv_weights(model, name="conv_second").shape == (2, 3, 4)
    with pytest.raises(SeqnnError, match="conv layer 2: the model has 2 conv layer"):
        MI.get_layer(model, "conv", 2)
    with pytest.raises(SeqnnError, match="'bn' is a BatchNormalization, not a Conv1D"):
        MI.conv_weights(model, name="bn")


def test_pwms_of_motif_filters_and_similarity():
    _, kernel = motif_model()
    pwms = F.filter_pwms(np.transpose(kernel, (2, 0, 1)))
    # softmax of 3 nats over the centred column: the motif base has e^3 / (e^3 + 3)
    top = np.exp(3) / (np.exp(3) + 3)
    for f, m in enumerate(MOTIFS):
        assert "".join("ACGT"[i] for i in pwms[f, 1:11].argmax(1)) == m
        np.testing.assert_allclose(pwms[f, 1:11].max(1), top)
        np.testing.assert_allclose(pwms[f, [0, 11]], 0.25)  # blank flanks
        r, off, strand = F.similarity(pwms[f], F.one_hot_pwm(m))
        assert (off, strand) == (1, "+") and r == pytest.approx(1.0, abs=1e-9)
        # the reverse complement's consensus is found on the - strand
        rc = m[::-1].translate(str.maketrans("ACGT", "TGCA"))
        assert F.similarity(pwms[f], F.one_hot_pwm(rc))[2] == "-"
    np.testing.assert_allclose(pwms[3], 0.25)  # an all-zero filter is uniform
    assert F.similarity(pwms[0], F.one_hot_pwm(MOTIFS[1]))[0] < 0.5


def test_meme_round_trip_and_cli(tmp_path, capsys):
    model, kernel = motif_model()
    path = tmp_path / "m.keras"
    save_model(model, path)
    cli.main(["filters", str(path), "-o", str(tmp_path / "out")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["filters"] == 4 and summary["width"] == 12
    text = (tmp_path / "out/filters.meme").read_text()
    assert text.startswith("MEME version 4\n\nALPHABET= ACGT")
    assert "MOTIF filter2\n\nletter-probability matrix: alength= 4 w= 12" in text
    pwms = F.read_meme(str(tmp_path / "out/filters.meme"))
    np.testing.assert_allclose(np.stack(list(pwms.values())),
                               F.filter_pwms(np.transpose(kernel, (2, 0, 1))), atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "out/filters.npy"),
                                  np.transpose(kernel, (2, 0, 1)))
    assert (tmp_path / "out/logos.png").stat().st_size > 10_000
    # the planted motifs carry 10 x (2 - H(top, 3 x rest)) bits, the blank filter none
    p = np.array([np.exp(3), 1, 1, 1]) / (np.exp(3) + 3)
    assert summary["info_bits"][0] == pytest.approx(10 * (2 + (p * np.log2(p)).sum()), abs=1e-3)
    assert summary["info_bits"][3] == pytest.approx(0, abs=1e-6)
