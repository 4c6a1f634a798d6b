"""Convolution kernels chosen for the CPU (seqnn.model.cpu): the rule on fake /proc/cpuinfo
text, the SEQNN_CONV override, and a model that trains, saves and predicts alike either way."""

import json
import zipfile

import keras
import numpy as np
import pytest

from seqnn import SeqnnError
from seqnn.model import cpu
from seqnn.model.build import build_model, load_model, save_model
from seqnn.model.conv import TapConv1D, UnfoldConv1D

AVX2 = "fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2"
AVX512 = AVX2 + " avx512f avx512dq avx512cd avx512bw avx512vl"


def cpuinfo(flags, model="Test CPU @ 2.0GHz"):
    """/proc/cpuinfo text of two x86 processors with `flags`."""
    block = f"processor\t: {{}}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n" \
            f"flags\t\t: {flags}\nbogomips\t: 4000.00\n"
    return "\n".join(block.format(i) for i in range(2))


ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sve\n"


@pytest.mark.parametrize(("info", "machine", "expected"), [
    (cpuinfo(AVX2), "x86_64", "custom"),  # where the custom kernels were tuned
    (cpuinfo(AVX512), "x86_64", "keras"),  # oneDNN's AVX-512 kernels are faster
    (cpuinfo("fpu sse sse2 avx"), "x86_64", "keras"),  # no AVX2: nothing measured
    (cpuinfo(AVX2), "AMD64", "custom"),
    (ARM, "aarch64", "keras"),
    (cpuinfo(AVX2), "arm64", "keras"),
    (None, "x86_64", "keras"),  # no /proc/cpuinfo (macOS, Windows)
    ("", "x86_64", "keras"),
])
def test_rule_picks_custom_kernels_on_avx2_without_avx512(info, machine, expected):
    assert cpu.conv_kernels({}, info, machine) == expected


def test_cpuinfo_is_parsed():
    assert cpu.cpu_flags(cpuinfo(AVX512)) == set(AVX512.split())
    assert cpu.cpu_model(cpuinfo(AVX2)) == "Test CPU @ 2.0GHz"
    assert "sve" in cpu.cpu_flags(ARM) and cpu.cpu_model(ARM) is None


@pytest.mark.parametrize("info", [cpuinfo(AVX2), cpuinfo(AVX512), ARM, None])
def test_environment_overrides_the_rule(info):
    for value, expected in [("custom", "custom"), ("keras", "keras"), (" Keras\n", "keras")]:
        assert cpu.conv_kernels({cpu.ENV: value}, info, "x86_64") == expected
    assert cpu.conv_kernels({cpu.ENV: ""}, info, "x86_64") == cpu.rule(info, "x86_64")
    with pytest.raises(SeqnnError, match="SEQNN_CONV='fast': expected one of custom, keras"):
        cpu.conv_kernels({cpu.ENV: "fast"}, info, "x86_64")


def test_this_machine_is_described(monkeypatch):
    monkeypatch.setenv(cpu.ENV, "keras")
    info = cpu.describe()
    assert info["conv_kernels"] == "keras" and info["conv_kernels_from"] == cpu.ENV
    assert {"cpu", "machine", "avx2", "avx512f"} <= set(info)


@pytest.mark.parametrize("cls", [UnfoldConv1D, TapConv1D])
def test_keras_choice_runs_conv1d_ops(cls, monkeypatch):
    """With SEQNN_CONV=keras the layers trace exactly Conv1D's ops (and outputs, gradients)."""
    import tensorflow as tf

    monkeypatch.setenv(cpu.ENV, "keras")
    x = tf.constant(np.random.default_rng(3).normal(size=(2, 40, 4)).astype("float32"))
    variant, conv = cls(6, 5, padding="same"), keras.layers.Conv1D(6, 5, padding="same")
    variant(x), conv(x)
    conv.set_weights(variant.get_weights())

    @tf.function
    def run(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x) ** 2)
        return [layer(x), *tape.gradient(loss, [x, *layer.trainable_variables])]

    for a, b in zip(run(variant, x), run(conv, x)):
        np.testing.assert_array_equal(a, b)
    ops = [op.type for op in run.get_concrete_function(variant, x).graph.get_operations()]
    assert {"Conv2D", "Conv2DBackpropFilter"} <= set(ops)


TINY = {"model": {
    "seq_length": 256, "activation": "gelu", "norm_type": "batch",
    "trunk": [{"name": "conv_dna", "filters": 12, "kernel_size": 7, "pool_size": 2},
              {"name": "conv_tower", "filters_init": 12, "filters_end": 16, "kernel_size": 5,
               "pool_size": 2, "repeat": 2}],
    "head": {"name": "final", "units": 3, "activation": "softplus"},
}}


def arch(model):
    """The model's saved architecture (without load_model's missing compile config)."""
    return {k: v for k, v in json.loads(model.to_json()).items() if k != "compile_config"}


def config_json(path):
    with zipfile.ZipFile(path) as z:
        return z.read("config.json")


@pytest.mark.parametrize(("saved_with", "loaded_with"), [("custom", "keras"), ("keras", "custom")])
def test_saved_model_predicts_alike_under_the_other_choice(saved_with, loaded_with, tmp_path,
                                                           monkeypatch):
    """The choice records nothing: a model trained and saved with one kind of kernel has the
    same layer classes, config and weights, and predicts alike, with the other."""
    x = np.eye(4, dtype="float32")[np.random.default_rng(0).integers(0, 4, (4, 256))]
    y = np.random.default_rng(1).gamma(1.0, 1.0, (4, 32, 3)).astype("float32")
    monkeypatch.setenv(cpu.ENV, saved_with)
    keras.utils.set_random_seed(0)
    model = build_model(TINY)
    assert {UnfoldConv1D, TapConv1D} <= {type(la) for la in model.layers}
    model.compile(optimizer="adam", loss="poisson")
    model.fit(x, y, epochs=1, verbose=0)  # a training step traced with `saved_with`
    before = np.asarray(model.predict(x, verbose=0))
    save_model(model, tmp_path / "m.keras", params=TINY)
    monkeypatch.setenv(cpu.ENV, loaded_with)
    loaded, _ = load_model(tmp_path / "m.keras")
    assert [type(la) for la in loaded.layers] == [type(la) for la in model.layers]
    assert arch(loaded) == arch(model)
    save_model(model, tmp_path / "again.keras", params=TINY)  # saved under `loaded_with`
    assert config_json(tmp_path / "again.keras") == config_json(tmp_path / "m.keras")
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    after = np.asarray(loaded.predict(x, verbose=0))
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()
