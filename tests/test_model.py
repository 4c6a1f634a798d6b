"""Model building from Basenji params: shapes, parameter counts, augmentation, save/load.

Parameter counts are derived by hand from the block definitions with the helpers below; the
three real params files under tests/data/params come from calico/basenji and calico/baskerville.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from seqnn import SeqnnError
from seqnn.model import attention, augment, build, layers, presets
from seqnn.model.conv import TapConv1D, UnfoldConv1D
from seqnn.model.params import params_reference, parse_params, target_length

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "tests" / "data" / "params"


# Trainable parameters of the layers blocks are made of.
def conv(k, cin, cout, bias=True):
    return k * cin * cout + (cout if bias else 0)


def dense(cin, cout, bias=True):
    return cin * cout + (cout if bias else 0)


def sep(k, cin, cout):
    """SeparableConv1D: depthwise k*cin, pointwise cin*cout, bias cout."""
    return k * cin + cin * cout + cout


def norm(c):
    """Batch or layer norm: gamma and beta (batch norm also has 2c non-trainable statistics)."""
    return 2 * c


def mha(c, heads, key, pos):
    """baskerville MultiheadAttention on c channels: value size c/heads."""
    qk = 2 * dense(c, heads * key, bias=False)
    v = dense(c, c, bias=False)
    out = dense(c, c)
    rel = dense(pos, heads * key, bias=False)
    return qk + v + out + rel + 2 * heads * key  # + r_w_bias, r_r_bias


def transformer(c, heads, key, pos, expansion=2):
    ffn = dense(c, expansion * c) + dense(expansion * c, c)
    return norm(c) + mha(c, heads, key, pos) + norm(c) + ffn


def summary(params):
    s = build.model_summary(params)
    return s["output_shape"], s["trainable_params"], s["non_trainable_params"]


def one_hot(batch, length, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(4, dtype="float32")[rng.integers(0, 4, size=(batch, length))]


def randomize(model, seed=0):
    """Random weights, so a round trip also checks zero-initialised weights."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0, 0.3, size=w.shape)
        if "moving_variance" in w.path:
            value = np.abs(value) + 0.5
        w.assign(value.astype("float32"))


# ---------------------------------------------------------------------------------------------
# Real params files


def test_basenji2_params():
    """Basenji2 (calico/basenji manuscripts/cross2020/params_human.json)."""
    params = presets.load_params(PARAMS / "basenji2_human.json")
    # conv_tower filters: 339 * 1.1776**i rounded = 339, 399.2, 470.1, 553.6, 651.9, 767.7
    tower = [288, 339, 399, 470, 554, 652, 768]
    expected = conv(15, 4, 288, bias=False) + norm(288)
    expected += sum(conv(5, a, b, bias=False) + norm(b) for a, b in zip(tower, tower[1:]))
    dilated = conv(3, 768, 384, bias=False) + norm(384) + conv(1, 384, 768, bias=False)
    expected += 11 * (dilated + norm(768))
    expected += conv(1, 768, 1536, bias=False) + norm(1536)
    expected += dense(1536, 5313)
    statistics = sum(tower) + 11 * (384 + 768) + 1536  # BN moving mean + variance: 2 per channel
    # 131072 bp / 2**7 = 1024 bins, cropped by 64 on each side
    assert summary(params) == ((None, 896, 5313), expected, 2 * statistics)
    assert expected == 30_088_228
    assert target_length(params) == 896


def test_basenji_tutorial_params():
    """Basenji's tutorial model (calico/basenji tutorials/models/params_small.json)."""
    params = presets.load_params(PARAMS / "basenji_small.json")
    tower = [64, 64, 72]  # 64 * 1.125 = 72
    expected = conv(15, 4, 64, bias=False) + norm(64)
    expected += sum(conv(5, a, b, bias=False) + norm(b) for a, b in zip(tower, tower[1:]))
    dilated = conv(3, 72, 32, bias=False) + norm(32) + conv(1, 32, 72, bias=False) + norm(72)
    expected += 6 * dilated + conv(1, 72, 64, bias=False) + norm(64) + dense(64, 3)
    statistics = 64 + 64 + 72 + 6 * (32 + 72) + 64
    # 131072 bp / 8 / 4 / 4 = 1024 bins
    assert summary(params) == ((None, 1024, 3), expected, 2 * statistics)
    assert expected == 109_235


def test_baskerville_params():
    """baskerville's test model (calico/baskerville tests/data/params.json): transformer,
    U-net, two heads."""
    params = presets.load_params(PARAMS / "baskerville_tests.json")
    # res_tower: 72 -> 128 over 6 repeats, x1.122 each, rounded to multiples of 8
    tower = [64, 72, 80, 88, 104, 112, 128]
    expected = conv(7, 4, 64)  # conv_dna: norm_type null, so with bias
    expected += sum(norm(a) + conv(5, a, b) for a, b in zip(tower, tower[1:]))
    expected += 2 * transformer(128, heads=4, key=64, pos=32)
    # fpn_unet: norm both paths, dense both to 128, separable conv; skips are the res_tower's
    # pre-pool outputs of twice the length: 128 channels (repeat 6), then 112 (repeat 5)
    for skip in (128, 112):
        expected += norm(128) + norm(skip) + dense(128, 128) + dense(skip, 128) + sep(3, 128, 128)
    expected += dense(128, 74) + dense(128, 32)
    statistics = sum(tower[:-1]) + 128 + 128 + 128 + 112
    # 131072 / 2**7 = 1024, upsampled twice to 4096, cropped by 1024 on each side
    shapes = [(None, 2048, 74), (None, 2048, 32)]
    assert summary(params) == (shapes, expected, 2 * statistics)
    assert expected == 725_794


def test_demo_params():
    params = presets.load_params(ROOT / "config" / "models" / "demo.json")
    expected = conv(15, 4, 32, bias=False) + norm(32)  # conv_dna, pooled to the 16 bp bins
    dilated = conv(3, 32, 32, bias=False) + norm(32) + conv(1, 32, 32, bias=False) + norm(32)
    expected += 6 * dilated + dense(32, 4)
    assert summary(params)[:2] == ((None, 128, 4), expected)
    assert expected == 27_460
    assert target_length(params) == 128
    assert params["train"]["batch_size"] == 8


def test_target_length_needs_no_tensorflow():
    code = (
        "import sys; from seqnn.model.params import target_length; "
        "from seqnn.model.presets import load_params; "
        f"n = target_length(load_params({str(PARAMS / 'basenji2_human.json')!r})); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print(n)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "src")},
        check=True,
    )
    assert out.stdout.strip() == "896"


# ---------------------------------------------------------------------------------------------
# One model per block: shape, parameter count, save/load round trip


def tiny(trunk, head=None, **globals_):
    head = head or {"name": "final", "units": 3}
    model = {"seq_length": 64, "augment_rc": True, "augment_shift": 2, "trunk": trunk}
    return {"model": {**model, **globals_, "head": head}}


CONV8 = {"name": "conv_block", "filters": 8, "kernel_size": 3}
FINAL8 = dense(8, 3)

BLOCK_CASES = {
    "conv_dna": (
        tiny(
            [{"name": "conv_dna", "filters": 8, "kernel_size": 5, "pool_size": 2}],
            norm_type="batch",
        ),
        (None, 32, 3),
        conv(5, 4, 8, bias=False) + norm(8) + FINAL8,
        2 * 8,
    ),
    "conv_dna_residual_se": (
        # conv, SE (8 -> 1 -> 8), residual conv_nac branch (BN, 1x1 conv, SE), scale
        tiny(
            [{"name": "conv_dna", "filters": 8, "kernel_size": 5, "residual": True, "se": True}],
            norm_type="batch",
        ),
        (None, 64, 3),
        conv(5, 4, 8, bias=False)
        + 2 * (dense(8, 1) + dense(1, 8))
        + norm(8)
        + conv(1, 8, 8)
        + 8
        + FINAL8,
        2 * 8,
    ),
    "conv_dna_softmax_pool": (
        tiny(
            [
                {
                    "name": "conv_dna",
                    "filters": 8,
                    "kernel_size": 5,
                    "pool_size": 2,
                    "pool_type": "softmax",
                }
            ]
        ),
        (None, 32, 3),
        conv(5, 4, 8) + 8 + FINAL8,  # softmax pool: dense 8 -> 1 logit, no bias
        0,
    ),
    "conv_block": (
        tiny([{**CONV8, "pool_size": 4, "dropout": 0.1}]),
        (None, 16, 3),
        conv(3, 4, 8) + FINAL8,
        0,
    ),
    "conv_nac": (
        tiny([{"name": "conv_nac", "filters": 8, "kernel_size": 3, "norm_type": "layer"}]),
        (None, 64, 3),
        norm(4) + conv(3, 4, 8) + FINAL8,
        0,
    ),
    "conv_tower": (
        # 8 -> 16 over 3 repeats: 8, 11.3 -> 12, 16 (multiples of 4)
        tiny(
            [
                {
                    "name": "conv_tower",
                    "filters_init": 8,
                    "filters_end": 16,
                    "divisible_by": 4,
                    "repeat": 3,
                    "kernel_size": 3,
                    "pool_size": 2,
                }
            ],
            norm_type="batch",
        ),
        (None, 8, 3),
        conv(3, 4, 8, False)
        + norm(8)
        + conv(3, 8, 12, False)
        + norm(12)
        + conv(3, 12, 16, False)
        + norm(16)
        + dense(16, 3),
        2 * (8 + 12 + 16),
    ),
    "res_tower": (
        # per repeat: BN + conv k3, BN + conv 1x1, scale; filters 8 then 16; pool 2 each
        tiny(
            [
                {
                    "name": "res_tower",
                    "filters_init": 8,
                    "filters_mult": 2,
                    "repeat": 2,
                    "kernel_size": 3,
                    "pool_size": 2,
                }
            ],
            norm_type="batch",
        ),
        (None, 16, 3),
        norm(4)
        + conv(3, 4, 8)
        + norm(8)
        + conv(1, 8, 8)
        + 8
        + norm(8)
        + conv(3, 8, 16)
        + norm(16)
        + conv(1, 16, 16)
        + 16
        + dense(16, 3),
        2 * (4 + 8 + 8 + 16),
    ),
    "dilated_residual": (
        # per repeat: conv k3 8 -> 4, conv 1x1 4 -> 8, zero-initialised scale (no norm)
        tiny([CONV8, {"name": "dilated_residual", "filters": 4, "repeat": 2, "dropout": 0.1}]),
        (None, 64, 3),
        conv(3, 4, 8) + 2 * (conv(3, 8, 4) + conv(1, 4, 8) + 8) + FINAL8,
        0,
    ),
    "transformer_tower": (
        tiny(
            [
                {**CONV8, "pool_size": 4},
                {
                    "name": "transformer_tower",
                    "key_size": 4,
                    "heads": 2,
                    "num_position_features": 4,
                    "repeat": 1,
                },
            ]
        ),
        (None, 16, 3),
        conv(3, 4, 8) + transformer(8, heads=2, key=4, pos=4) + FINAL8,
        0,
    ),
    "unet_conv": (
        # tower outputs at 32 and 16 bins; unet_conv upsamples 16 -> 32 and adds a dense
        # projection of the 32-bin output, then a separable conv
        tiny(
            [
                {
                    "name": "conv_tower",
                    "filters_init": 8,
                    "filters_mult": 1,
                    "repeat": 2,
                    "kernel_size": 3,
                    "pool_size": 2,
                },
                {"name": "unet_conv", "kernel_size": 3},
            ]
        ),
        (None, 32, 3),
        conv(3, 4, 8) + conv(3, 8, 8) + dense(8, 8) + sep(3, 8, 8) + FINAL8,
        0,
    ),
    "squeeze_excite": (
        # batch norm (from the model) also normalises the excitation, as in Basenji
        tiny(
            [
                {"name": "conv_block", "filters": 16, "kernel_size": 3},
                {"name": "squeeze_excite", "bottleneck_ratio": 4},
            ],
            norm_type="batch",
        ),
        (None, 64, 3),
        conv(3, 4, 16, False) + norm(16) + dense(16, 4) + dense(4, 16) + norm(16) + dense(16, 3),
        2 * (16 + 16),
    ),
    "final_flatten": (
        tiny(
            [{"name": "conv_block", "filters": 4, "pool_size": 16}],
            head={"name": "final", "units": 3, "flatten": True},
        ),
        (None, 1, 3),
        conv(1, 4, 4) + dense(4 * 4, 3),
        0,
    ),
    "Cropping1D": (
        tiny([{"name": "Cropping1D", "cropping": [3, 5]}]),
        (None, 56, 3),
        dense(4, 3),
        0,
    ),
    "Conv1D": (
        tiny([{"name": "Conv1D", "filters": 6, "kernel_size": 5}]),  # Keras default: valid
        (None, 60, 3),
        conv(5, 4, 6) + dense(6, 3),
        0,
    ),
    "Dense": (
        tiny([{"name": "Dense", "units": 5}]),
        (None, 64, 3),
        dense(4, 5) + dense(5, 3),
        0,
    ),
}


@pytest.mark.parametrize("case", BLOCK_CASES)
def test_block(case, tmp_path):
    params, shape, trainable, non_trainable = BLOCK_CASES[case]
    model = build.build_model(params, strand_pair=[1, 0, 2])
    assert tuple(model.output.shape) == shape
    assert target_length(params) == shape[1]
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == non_trainable

    randomize(model)
    path = tmp_path / "model.keras"
    build.save_model(model, path, params=params)
    loaded, meta = build.load_model(path)
    x = one_hot(2, 64)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), expected)
    assert meta["params"] == params


# ---------------------------------------------------------------------------------------------
# Heads


def test_heads_share_trunk():
    params = {
        "seq_length": 32,
        "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 5}],
        "head_mouse": {"name": "final", "units": 2},
        "head_human": [{"name": "conv_block", "filters": 4}, {"name": "final", "units": 3}],
    }
    model = build.build_model(params)
    assert model.output_names == ["head_human", "head_mouse"]
    assert [tuple(o.shape) for o in model.outputs] == [(None, 32, 3), (None, 32, 2)]
    # the trunk's conv is counted once
    trunk = conv(5, 4, 8)
    heads = conv(1, 8, 4) + dense(4, 3) + dense(8, 2)
    assert model.count_params() == trunk + heads
    trunk_conv = next(la for la in model.layers if isinstance(la, keras.layers.Conv1D))
    for output in model.outputs:
        branch = keras.Model(model.input, output)
        assert trunk_conv in branch.layers


def test_head_list_of_heads():
    params = {
        "seq_length": 32,
        "trunk": [{"name": "conv_block", "filters": 8}],
        "head": [[{"name": "final", "units": 2}], [{"name": "final", "units": 5}]],
    }
    model = build.build_model(params, strand_pair=[[1, 0], None])
    assert model.output_names == ["head0", "head1"]
    assert build.model_summary(params)["output_shape"] == [(None, 32, 2), (None, 32, 5)]


# ---------------------------------------------------------------------------------------------
# Augmentation


def rc_model(**kw):
    trunk = [{"name": "conv_block", "filters": 8, "kernel_size": 5}]
    model = {"seq_length": 32, "trunk": trunk, "head": {"name": "final", "units": 3}}
    return build.build_model({**model, **kw}, strand_pair=[1, 0, 2])


def test_reverse_complement_augmentation():
    keras.utils.set_random_seed(3)
    model = rc_model(augment_rc=True)
    x = one_hot(16, 32)
    forward = keras.ops.convert_to_numpy(model(x, training=False))
    rc_input = keras.ops.convert_to_numpy(augment.reverse_complement(x))
    # a reverse-complemented training sequence predicts the RC input's output, flipped back
    # along the length and with the stranded tracks 0 and 1 swapped
    backward = keras.ops.convert_to_numpy(model(rc_input, training=False))[:, ::-1, [1, 0, 2]]
    assert not np.allclose(forward, backward)
    train = keras.ops.convert_to_numpy(model(x, training=True))
    is_forward = [np.allclose(t, f, atol=1e-6) for t, f in zip(train, forward)]
    is_backward = [np.allclose(t, b, atol=1e-6) for t, b in zip(train, backward)]
    assert all(f != b for f, b in zip(is_forward, is_backward))
    assert any(is_forward) and any(is_backward)


def test_reverse_complement_layer():
    seq = one_hot(1, 5)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(augment.reverse_complement(seq))[0],
        seq[0, ::-1, ::-1],  # reverse the length, A<->T and C<->G
    )
    rc = augment.StochasticReverseComplement(seed=1)
    out, flag = rc(seq, training=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), seq)
    assert not keras.ops.convert_to_numpy(flag).any()


def test_shift_augmentation_only_in_training():
    keras.utils.set_random_seed(4)
    model = rc_model(augment_rc=True, augment_shift=3)
    x = one_hot(8, 32)
    first = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), first, atol=1e-6)

    shift = augment.StochasticShift(3, seed=5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(shift(x, training=False)), x)
    shifted = keras.ops.convert_to_numpy(shift(x, training=True))
    offsets = []
    for s, original in zip(shifted, x):
        matches = [k for k in range(-3, 4) if np.array_equal(s, shift_by(original, k))]
        assert matches, "each training sequence is the original shifted by -3..3, padded with N"
        offsets.append(matches[0])
    assert any(offsets)


def shift_by(seq, k):
    out = np.zeros_like(seq)
    if k >= 0:
        out[k:] = seq[: len(seq) - k]
    else:
        out[:k] = seq[-k:]
    return out


def test_strand_pair_checked():
    params = {
        "seq_length": 32,
        "trunk": [{"name": "conv_block", "filters": 8}],
        "head": {"name": "final", "units": 3},
    }
    with pytest.raises(SeqnnError, match="strand_pair for head: need 3 indices"):
        build.build_model(params, strand_pair=[1, 1, 2])  # 1's pair is not 0's
    with pytest.raises(SeqnnError, match="strand_pair for head: need 3 indices"):
        build.build_model(params, strand_pair=[0, 1])


# ---------------------------------------------------------------------------------------------
# Attention internals


@pytest.mark.parametrize(("rows", "t"), [(1, 1), (2, 2), (5, 5), (16, 16), (3, 16), (1, 7)])
def test_relative_shift_indexes_by_distance(rows, t):
    """`rows` queries against `t` keys: logits over the `t + rows - 1` distances they span."""
    x = np.random.default_rng(0).normal(size=(3, 2, rows, t + rows - 1)).astype("float32")
    shifted = keras.ops.convert_to_numpy(attention.relative_shift(x, t))
    i, j = np.meshgrid(np.arange(rows), np.arange(t), indexing="ij")
    np.testing.assert_array_equal(shifted, x[:, :, i, j - i + rows - 1])


@pytest.mark.parametrize(("cls", "kernel", "padding"), [
    ("UnfoldConv1D", 7, "same"), ("UnfoldConv1D", 4, "same"), ("UnfoldConv1D", 5, "valid"),
    ("UnfoldConv1D", 1, "same"),
    ("TapConv1D", 5, "same"), ("TapConv1D", 4, "same"), ("TapConv1D", 3, "valid"),
])
def test_conv_variants_equal_conv1d(cls, kernel, padding, tmp_path, monkeypatch):
    """UnfoldConv1D and TapConv1D with their own kernels (SEQNN_CONV=custom): Conv1D's outputs
    and input and weight gradients, without the op they replace, and a .keras round trip."""
    import tensorflow as tf

    monkeypatch.setenv("SEQNN_CONV", "custom")

    x = tf.constant(np.random.default_rng(3).normal(size=(2, 40, 4)).astype("float32"))
    kw = dict(filters=6, kernel_size=kernel, padding=padding, activation="relu")
    variant = {"UnfoldConv1D": UnfoldConv1D, "TapConv1D": TapConv1D}[cls](**kw)
    conv = keras.layers.Conv1D(**kw)
    variant(x), conv(x)
    conv.set_weights([w + 0.1 for w in variant.get_weights()])
    variant.set_weights(conv.get_weights())

    @tf.function
    def run(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * np.arange(y.shape[1])[None, :, None])
        return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]

    for a, b in zip(run(variant, x), run(conv, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    graph = run.get_concrete_function(variant, x).graph
    replaced = {"UnfoldConv1D": "Conv2D", "TapConv1D": "Conv2DBackpropFilter"}[cls]
    assert replaced not in {op.type for op in graph.get_operations()}
    inp = keras.Input((40, 4))
    model = keras.Model(inp, variant(inp))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x), model(x))


def attention_reference(layer, x):
    """numpy MultiheadAttention (inference): softmax((q + u)k + (q + w)r_{j-i}) v, per head."""
    wq, wk, wv, we, be, wr, u, w = (np.asarray(v) for v in (
        layer.q_layer.kernel, layer.k_layer.kernel, layer.v_layer.kernel,
        layer.embedding_layer.kernel, layer.embedding_layer.bias, layer.r_k_layer.kernel,
        layer.r_w_bias, layer.r_r_bias))
    length, heads, key = x.shape[1], layer.heads, layer.key_size
    split = lambda a: a.reshape(*a.shape[:-1], heads, -1)  # noqa: E731 [.., heads, size]
    q, k, v = split(x @ wq) * key**-0.5, split(x @ wk), split(x @ wv)
    r = split(np.asarray(attention.positional_features(length, layer.num_position_features)) @ wr)
    i, j = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    r_ij = r[j - i + length - 1]  # [L, L, heads, key]: the projection of distance j - i
    bias_r = q + w[0, :, 0] if layer.content_position_bias else np.broadcast_to(w[0, :, 0], q.shape)
    logits = np.einsum("bihc,bjhc->bhij", q + u[0, :, 0], k)
    logits += np.einsum("bihc,ijhc->bhij", bias_r, r_ij)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhij,bjhc->bihc", weights, v).reshape(x.shape[0], length, -1)
    return out @ we + be


@pytest.mark.parametrize(("length", "chunk", "content"), [
    (37, 8, True),   # blocks of 8, the last of 5
    (33, 8, True),   # the last block a single query
    (20, None, True),
    (21, 4, False),  # positional logits from the bias only
])
def test_attention_equals_numpy_reference(length, chunk, content):
    """Chunked or not, attention equals the dense formula; gradients do not depend on chunks."""
    import tensorflow as tf

    x = np.random.default_rng(1).normal(size=(2, length, 12)).astype("float32")
    make = lambda c: attention.MultiheadAttention(  # noqa: E731
        6, 4, 3, 6, content_position_bias=content, query_chunk=c)
    layer, whole = make(chunk), make(None)
    layer(x), whole(x)
    rng = np.random.default_rng(2)
    layer.set_weights([rng.normal(size=v.shape).astype("float32") * 0.5
                       for v in layer.get_weights()])
    whole.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)),
                               attention_reference(layer, x), rtol=1e-4, atol=1e-4)

    def grads(lay):
        with tf.GradientTape() as tape:
            xt = tf.constant(x)
            tape.watch(xt)
            y = tf.reduce_sum(lay(xt) ** 2)
        return [g.numpy() for g in tape.gradient(y, [xt, *lay.trainable_variables])]

    for a, b in zip(grads(layer), grads(whole)):  # float32 sums in another order: scale atol
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


def test_gelu_is_the_tanh_approximation():
    """gelu: 0.5 x (1 + tanh(c (x + 0.044715 x^3))) and its derivative, in numpy."""
    import tensorflow as tf

    x = np.linspace(-9, 9, 3001)
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    slope = 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)
    xt = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layers.gelu(xt)
    np.testing.assert_allclose(y, 0.5 * x * (1 + t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tape.gradient(y, xt), slope, rtol=1e-5, atol=1e-6)


def test_keep_mask_rate_and_independence():
    """Two 15-bit draws per random int: keep rate 1 - rate (to 2^-15), halves independent."""
    keep, p = attention.keep_mask((3, 2, 50, 129), 0.3, keras.random.SeedGenerator(4))
    keep = keras.ops.convert_to_numpy(keep)
    assert keep.shape == (3, 2, 50, 129) and p == 1 - round(0.3 * 2**15) / 2**15
    n = keep.size
    assert abs(keep.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    lo, hi = keep[..., :64].ravel(), keep[..., 65:].ravel()  # entries from one int's two halves
    assert abs(np.corrcoef(lo, hi)[0, 1]) < 5 / np.sqrt(lo.size)


def test_attention_dropout_is_unbiased():
    """Training with attention dropout: the mean over independent masks is the inference output."""
    x = np.random.default_rng(5).normal(size=(1, 9, 12)).astype("float32")
    layer = attention.MultiheadAttention(6, 4, 2, 6, attention_dropout=0.4, seed=1, query_chunk=4)
    layer(x)
    layer.set_weights([np.random.default_rng(6).normal(size=v.shape).astype("float32")
                       for v in layer.get_weights()])
    draws = 4000
    out = keras.ops.convert_to_numpy(layer(np.repeat(x, draws, axis=0), training=True))
    mean, sem = out.mean(0), out.std(0) / np.sqrt(draws)
    assert np.all(np.abs(mean - attention_reference(layer, x)[0]) < 5 * sem + 1e-5)
    assert out.std(0).mean() > 0.1 * np.abs(mean).mean()  # the masks differ between rows


def test_positional_features():
    features = keras.ops.convert_to_numpy(attention.positional_features(4, 6))
    assert features.shape == (7, 6)
    np.testing.assert_array_equal(features[3, :3], [1, 1, 1])  # distance 0: inside every window
    np.testing.assert_array_equal(features[3, 3:], [0, 0, 0])  # sign(0) = 0
    np.testing.assert_array_equal(features[0, 3:], -features[0, :3])  # negative distance


# ---------------------------------------------------------------------------------------------
# Validation


BASE = {"seq_length": 32, "head": {"name": "final", "units": 2}}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {**BASE, "trunk": [{"name": "conv_towr"}]},
            r"model.trunk\[0\]: unknown block 'conv_towr'; valid blocks: conv_dna, conv_block,",
        ),
        (
            {**BASE, "trunk": [{"name": "dilated_residual", "filters": 8, "rate_mul": 2}]},
            r"model.trunk\[0\] \(dilated_residual\): unknown key 'rate_mul'; "
            r"valid keys: filters, kernel_size, rate_mult,",
        ),
        (
            {**BASE, "trunk": [{"name": "conv_tower", "repeat": 2}]},
            r"model.trunk\[0\] \(conv_tower\): missing required key 'filters_init'",
        ),
        (
            {**BASE, "trunk": [{"name": "conv_block", "norm_type": "batchnorm"}]},
            r"norm_type='batchnorm' is not one of null, \"batch\", \"batch-sync\", \"layer\"",
        ),
        (
            {**BASE, "trunk": [], "seq_len": 32},
            r"model: unknown key 'seq_len'; valid keys: seq_length,",
        ),
        (
            {**BASE, "trunk": [], "head": {"name": "final"}},
            r"model.head\[0\] \(final\): missing required key 'units'",
        ),
        (
            {**BASE, "trunk": [{"name": "unet_conv"}]},
            r"unet_conv: no earlier trunk output of length 64",
        ),
    ],
)
def test_invalid_params(model, message):
    with pytest.raises(SeqnnError, match=message):
        build.build_model(model)


def test_legacy_spellings():
    legacy = {
        "seq_length": 32,
        "batch_norm": True,
        "trunk": [{"name": "conv_block", "filters": 8, "strides": 2, "bn_gamma": "zeros"}],
        "head_x": {"name": "dense", "units": 2},
    }
    spec = parse_params(legacy)
    name, p = spec.trunk[0]
    assert (name, p["norm_type"], p["stride"], p["norm_gamma"]) == (
        "conv_block",
        "batch",
        2,
        "zeros",
    )
    assert target_length(legacy) == 16


def test_load_params_errors(tmp_path):
    with pytest.raises(SeqnnError, match="missing.json: params file not found"):
        presets.load_params(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SeqnnError, match="bad.json: invalid JSON"):
        presets.load_params(bad)


# ---------------------------------------------------------------------------------------------
# Model files


def test_save_model_carries_metadata(tmp_path):
    model = rc_model()
    targets = [
        {"identifier": "plus", "strand_pair": 1},
        {"identifier": "minus", "strand_pair": 0},
        {"identifier": "dnase", "strand_pair": 2},
    ]
    statistics = {"seq_length": 32, "target_length": 32, "num_targets": 3}
    path = tmp_path / "model_best.keras"
    build.save_model(
        model, path, params={"model": {}}, targets=targets, statistics=statistics
    )
    assert [p.name for p in tmp_path.iterdir()] == ["model_best.keras"]  # no temporary left
    _, meta = build.load_model(path)
    assert meta == {"params": {"model": {}}, "targets": targets, "statistics": statistics}

    with pytest.raises(SeqnnError, match=r"model.h5: model files must end in .keras"):
        build.save_model(model, tmp_path / "model.h5")
    with pytest.raises(SeqnnError, match="nothing.keras: model file not found"):
        build.load_model(tmp_path / "nothing.keras")


# ---------------------------------------------------------------------------------------------
# Documentation


def test_readme_reference_is_current():
    readme = (ROOT / "config" / "models" / "README.md").read_text()
    assert params_reference() in readme, (
        "regenerate the reference section of config/models/README.md "
        "from seqnn.model.params_reference()"
    )


def test_model_params_accepts_bare_model_block():
    params = json.loads((PARAMS / "basenji_small.json").read_text())
    assert target_length(params["model"]) == target_length(params)
