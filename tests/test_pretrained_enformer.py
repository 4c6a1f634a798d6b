"""Enformer imported from enformer-pytorch's Hugging Face layout reproduces the port's outputs.

`../shared/data/pretrained/enformer_mini` is a small Enformer (dim 96, depth 2, 4 heads, key 16,
human 6 and mouse 3 tracks, target length 48) with every weight randomised, saved by
enformer-pytorch 0.8.12, with the port's own outputs for four 8,192 bp sequences (README there).
"""

import json
import math
import shutil
import sys

import keras
import numpy as np
import pytest
from helpers import REPO

from seqnn import SeqnnError
from seqnn.data import dna
from seqnn.model import attention, build, layers
from seqnn.model.params import target_length
from seqnn.model.pretrained_enformer import (
    enformer_params,
    import_enformer,
    read_config,
    trunk_model,
)

MINI = REPO.parent / "shared" / "data" / "pretrained" / "enformer_mini"
REF = np.load(MINI / "reference.npz")
SEQ_LENGTH = 8192


def predict(model, x):
    heads = model(x, training=False)
    return {"human": keras.ops.convert_to_numpy(heads[0]),
            "mouse": keras.ops.convert_to_numpy(heads[1]),
            "embeddings": keras.ops.convert_to_numpy(trunk_model(model)(x, training=False))}


@pytest.fixture(scope="module")
def x():
    return dna.one_hot(REF["codes"])


@pytest.fixture(scope="module", params=["model.safetensors", "pytorch_model.bin"])
def imported(request):
    return import_enformer(MINI / request.param, seq_length=SEQ_LENGTH)


def test_outputs_match_enformer_pytorch(imported, x):
    model, _ = imported
    ours = predict(model, x)
    for name, shape in (("human", (4, 48, 6)), ("mouse", (4, 48, 3)), ("embeddings", (4, 48, 192))):
        ref = REF[name]
        assert ours[name].shape == ref.shape == shape
        error = np.abs(ours[name] - ref).max() / np.abs(ref).max()
        assert error <= 1e-4, f"{name}: max |ours - ref| = {error:.2e} of max |ref|"


def test_imported_model_is_the_preset(imported):
    """The model is the enformer preset at the port's scale, with the port's parameter count."""
    model, params = imported
    scale = params["preset"]["scale"]
    assert params["preset"]["name"] == "enformer"
    assert {k: scale[k] for k in ("width", "depth", "heads", "key_size", "divisible_by")} == {
        "width": 96, "depth": 2, "heads": 4, "key_size": 16, "divisible_by": 16}
    assert scale["position_basis"] == "enformer"  # use_tf_gamma false
    # 8,192 bp = 64 bins of 128 bp, the port's TargetLengthCrop keeps the middle 48
    assert (scale["seq_length"], scale["pool_width"], scale["crop_bp"]) == (8192, 128, 8 * 128)
    assert target_length(params) == 48
    from safetensors.numpy import load_file

    state = load_file(MINI / "model.safetensors")
    port = sum(v.size for k, v in state.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert sum(math.prod(w.shape) for w in model.trainable_weights) == port


def test_keras_round_trip(imported, x, tmp_path):
    model, params = imported
    path = tmp_path / "enformer.keras"
    targets = [{"identifier": f"t{i}"} for i in range(6)]
    build.save_model(model, path, params=params, targets=targets)
    loaded, meta = build.load_model(path)
    assert meta["params"] == json.loads(json.dumps(params))
    assert meta["targets"] == targets
    expected, got = predict(model, x), predict(loaded, x)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=1e-7)


def test_tf_gamma_is_the_tensorflow_normalisation():
    params = enformer_params(read_config(MINI / "config.json"), SEQ_LENGTH, use_tf_gamma=True)
    assert params["preset"]["scale"]["position_basis"] == "enformer_tf"
    config = {**json.loads((MINI / "config.json").read_text()), "use_tf_gamma": True}
    assert enformer_params({**read_config(MINI / "config.json"), **config},
                           SEQ_LENGTH)["preset"]["scale"]["position_basis"] == "enformer_tf"


# ---------------------------------------------------------------------------------------------
# The preset's Enformer pieces against hand-computed values


def test_enformer_position_features():
    length, features = 8, 12  # two of each basis, then the same times sign(distance)
    basis = attention.enformer_position_features(length, features)
    distance = np.arange(-7, 8)
    assert basis.shape == (15, 12) and basis.dtype == np.float32
    # exponential: half-lives 2^3 and 2^log2(8) = 8 bp for both
    half_life = np.array([8.0, 8.0])
    np.testing.assert_allclose(basis[:, 0:2], 0.5 ** (np.abs(distance)[:, None] / half_life),
                               rtol=1e-6)
    # central mask: widths 2^1 - 1 = 1 and 2^2 - 1 = 3
    np.testing.assert_array_equal(basis[:, 2:4], np.abs(distance)[:, None] < [1, 3])
    # gamma: means 4 and 8, stddev 2; each distance's two densities scaled to a maximum of 1
    mean, sd = np.array([4.0, 8.0]), 2.0
    k, theta = (mean / sd) ** 2, sd**2 / mean
    d = np.abs(distance)[:, None].astype(float)
    with np.errstate(divide="ignore"):
        pdf = np.exp((k - 1) * np.log(d) - d / theta - np.array([math.lgamma(v) for v in k])
                     - k * np.log(theta)) + 1e-8
    np.testing.assert_allclose(basis[:, 4:6], pdf / pdf.max(1, keepdims=True), rtol=1e-5)
    tf = attention.enformer_position_features(length, features, "distances")
    np.testing.assert_allclose(tf[:, 4:6], pdf / pdf.max(0, keepdims=True), rtol=1e-5)
    np.testing.assert_array_equal(basis[:, 6:], np.sign(distance)[:, None] * basis[:, :6])
    with pytest.raises(ValueError, match="8 features is not a multiple of 6"):
        attention.enformer_position_features(length, 8)


def test_gelu_sigmoid():
    v = np.linspace(-4, 4, 17).astype("float32")
    out = keras.ops.convert_to_numpy(layers.Activate("gelu_sigmoid")(v))
    np.testing.assert_allclose(out, v / (1 + np.exp(-1.702 * v)), rtol=1e-6, atol=1e-7)


def test_attention_pool_masks_a_ragged_end():
    """A length of 5 pooled by 2: the last window is position 4 alone (the port's padding)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    pool = layers.SoftmaxPool1D(2, per_channel=True)
    out = keras.ops.convert_to_numpy(pool(x))
    w = keras.ops.convert_to_numpy(pool.logits.kernel)
    padded = np.concatenate([x, np.zeros((2, 1, 3), "float32")], axis=1).reshape(2, 3, 2, 3)
    logits = padded @ w
    logits[:, -1, 1] = -np.inf
    weights = np.exp(logits - logits.max(2, keepdims=True))
    weights /= weights.sum(2, keepdims=True)
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out, (padded * weights).sum(2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, -1], x[:, -1], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the file, the problem and the fix


def copy_mini(tmp_path, config=None, weights=("model.safetensors",)):
    folder = tmp_path / "enformer"
    folder.mkdir(parents=True)
    text = (MINI / "config.json").read_text()
    if config is not None:
        text = json.dumps({**json.loads(text), **config})
    (folder / "config.json").write_text(text)
    for name in weights:
        shutil.copy(MINI / name, folder / name)
    return folder


def one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_bin_without_torch(tmp_path, monkeypatch):
    folder = copy_mini(tmp_path, weights=("pytorch_model.bin",))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(SeqnnError) as excinfo:
        import_enformer(folder, seq_length=SEQ_LENGTH)
    message = one_line(excinfo)
    assert message.startswith(f"{folder / 'pytorch_model.bin'}: reading a .bin checkpoint needs")
    assert "pip install torch==2.13.0" in message and "model.safetensors" in message


def test_config_that_is_not_enformer(tmp_path):
    folder = copy_mini(tmp_path, config={"model_type": "bert"})
    with pytest.raises(SeqnnError) as excinfo:
        import_enformer(folder, seq_length=SEQ_LENGTH)
    assert one_line(excinfo) == (
        f"{folder / 'config.json'}: not an enformer-pytorch config (model_type 'bert', "
        "expected 'enformer'); give the folder of an Enformer saved with save_pretrained")


def test_missing_files(tmp_path):
    folder = copy_mini(tmp_path, weights=())
    with pytest.raises(SeqnnError, match=r"enformer: no model.safetensors or pytorch_model.bin; "
                                         "download the weights next to config.json"):
        import_enformer(folder)
    (folder / "config.json").unlink()
    with pytest.raises(SeqnnError, match=r"config.json: not found; give the folder"):
        import_enformer(folder)


def test_weights_that_do_not_fit(tmp_path):
    folder = copy_mini(tmp_path, config={"attn_dim_key": 32})
    with pytest.raises(SeqnnError) as excinfo:
        import_enformer(folder, seq_length=SEQ_LENGTH)
    assert one_line(excinfo) == (
        f"{folder / 'model.safetensors'}: tensor transformer.0.0.fn.1.to_q.weight has shape "
        f"(64, 96), but {folder / 'config.json'} needs (128, 96); the weights and config.json "
        "are from different models")
    folder = copy_mini(tmp_path / "shallow", config={"depth": 1})
    with pytest.raises(SeqnnError, match=r"model.safetensors: 16 tensors that .*config.json has "
                                         r"no place for, first transformer\.1\.0\.fn\.0\.bias"):
        import_enformer(folder, seq_length=SEQ_LENGTH)
    folder = copy_mini(tmp_path / "deep", config={"depth": 3})
    with pytest.raises(SeqnnError, match=r"model.safetensors: no tensor transformer\.2\.0\.fn\.0"
                                         r"\.weight; the weights do not match .*config.json"):
        import_enformer(folder, seq_length=SEQ_LENGTH)


def test_seq_length_that_does_not_crop(tmp_path):
    config = read_config(MINI / "config.json")
    with pytest.raises(SeqnnError, match="seq_length 8000 is not a multiple of the 128 bp bins"):
        enformer_params(config, 8000)
    with pytest.raises(SeqnnError, match=r"seq_length 8320 gives 65 bins, which the port cannot "
                                         r"crop evenly to target_length 48"):
        enformer_params(config, 8320)
