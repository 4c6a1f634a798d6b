"""Model presets (config/models/*.json with a `scale` block) and the blocks they brought.

Micro presets train a few steps on demo-shaped data and round-trip through `.keras`; the
published-size Enformer, Borzoi and Basenji2 (dilated_conv) build with the shapes and parameter
counts derived by hand below from the published architectures.
"""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from helpers import REPO
from test_model import conv, dense, mha, norm, one_hot, randomize, sep, summary, tiny

from seqnn import SeqnnError, cli
from seqnn.data import records
from seqnn.data.fasta import chrom_sizes
from seqnn.model import build, layers, presets
from seqnn.model.params import parse_params, receptive_field, target_length
from seqnn.train.dataset import dataset
from seqnn.train.loop import compile_model
from seqnn.train.options import train_options

PRESETS = presets.presets()

DEMO = REPO / "config" / "models" / "demo.json"


def demo_statistics():
    """statistics.json of the embedded demo, from config/config.yaml and its track sheet."""
    data = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]
    tracks = len((REPO / "config" / "targets.tsv").read_text().splitlines()) - 1
    bins = (data["seq_length"] - 2 * data["crop_bp"]) // data["pool_width"]
    keys = ("seq_length", "pool_width", "crop_bp")
    return {**{k: data[k] for k in keys}, "num_targets": tracks, "target_length": bins}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """The embedded demo through the data stage (library calls, fold0 records only)."""
    from seqnn.data import coverage, demo, genome, targets

    root = tmp_path_factory.mktemp("demo_data")
    demo.make_demo(str(root / "demo"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    d, fasta = config["data"], str(root / "demo" / "genome.fa")
    sheet = targets.read_sheet(str(REPO / "config" / "targets.tsv"))
    sizes = chrom_sizes(fasta)
    genome.write_contigs(fasta, str(root / "contigs.bed"), d["seq_length"], d["folds"], d["seed"],
                         break_length=d["break_length"])
    seqs = genome.write_sequences(str(root / "contigs.bed"), str(root / "seqs.bed"),
                                  d["seq_length"], d["folds"], d["stride_train"],
                                  d["stride_test"], sizes)
    cov = []
    for row in sheet.to_dict("records"):
        row["file"] = str(root / "demo" / row["file"].rsplit("/", 1)[1])
        cov.append(str(root / f"{row['identifier']}.h5"))
        coverage.write_coverage(row, str(root / "seqs.bed"), cov[-1], sizes, d["pool_width"])
    records.write_split(fasta, None, seqs, cov, str(root / "data" / "tfrecords"), "fold0", 64)
    stats = records.statistics(seqs, ["fold0"], len(sheet), d["pool_width"], d["crop_bp"])
    records.write_json(stats, str(root / "data" / "statistics.json"))
    return root / "data", stats


# ---------------------------------------------------------------------------------------------
# Every preset at micro size


@pytest.mark.parametrize("name", PRESETS)
def test_micro_preset_trains_and_round_trips(name, demo_data, tmp_path):
    data_dir, stats = demo_data
    params = presets.resolve_model(name, size="micro", data=stats)
    assert target_length(params) == stats["target_length"]
    keras.utils.set_random_seed(0)
    model = compile_model(params, train_options(params), stats["num_targets"])
    model.run_eagerly = True  # a few steps cost less than tracing the training step
    history = model.fit(dataset(str(data_dir), "fold0", 4), steps_per_epoch=2, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert model.output.shape == (None, stats["target_length"], stats["num_targets"])

    path = tmp_path / "model.keras"
    build.save_model(model, path, params=params, statistics=stats)
    loaded, meta = build.load_model(path)
    x = one_hot(2, stats["seq_length"])
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)), expected, rtol=1e-5, atol=1e-6
    )
    assert meta["params"] == json.loads(json.dumps(params))


def test_presets_listed():
    assert PRESETS == [
        "borzoi", "conv", "conv_gru", "conv_mlp", "conv_transformer", "dilated_conv",
        "enformer", "explainn",
    ]


# ---------------------------------------------------------------------------------------------
# Resolution: scale keys, sizes, data, errors


def test_scale_keys_reach_the_blocks():
    params = presets.resolve_model("enformer", size="micro", width=64, depth=2)
    trunk = params["model"]["trunk"]
    assert trunk[0]["filters"] == 32 and trunk[1]["filters_end"] == 64
    assert trunk[1]["divisible_by"] == 8 and trunk[1]["repeat"] == 3  # log2(16) - 1
    assert trunk[2]["repeat"] == 2 and trunk[2]["key_size"] == 8
    assert params["model"]["head"]["units"] == 4
    assert params["preset"] == {
        "name": "enformer",
        "size": "micro",
        "scale": {"width": 64, "depth": 2, "pool_type": "attention", "heads": 8,
                  "key_size": 8, "divisible_by": 8, "dropout": 0.4, "attention_dropout": 0.05,
                  "position_dropout": 0.01, "position_basis": "central_mask",
                  "seq_length": 2048, "pool_width": 16, "crop_bp": 0, "tracks": 4},
    }
    # config.yaml's mapping form is the same call
    mapping = {"preset": "enformer", "size": "micro", "width": 64, "depth": 2}
    assert presets.resolve_model(mapping) == params
    # a preset file by path resolves alike; load_params gives its default size
    path = Path(presets.PRESET_DIR) / "enformer.json"
    assert presets.resolve_model(path, size="micro", width=64, depth=2)["model"] == (
        params["model"]
    )
    assert presets.load_params(path)["model"]["trunk"][2]["repeat"] == 11


def test_preset_fits_the_data():
    data = {"seq_length": 4096, "pool_width": 32, "crop_bp": 512, "num_targets": 7}
    params = presets.resolve_model("dilated_conv", size="micro", data=data)
    mp = params["model"]
    assert mp["seq_length"] == 4096 and mp["head"]["units"] == 7
    assert mp["trunk"][1]["repeat"] == 4 and mp["trunk"][3]["cropping"] == 16
    assert target_length(params) == (4096 - 2 * 512) // 32
    # the U-net of Borzoi follows the bin width: transformer at 4 x pool_width
    borzoi = presets.resolve_model("borzoi", size="micro", data=data)
    assert target_length(borzoi) == 96
    assert borzoi["model"]["trunk"][1]["repeat"] == 6  # 2 * 2**6 = 128 bp = 4 x 32


def test_tracks_mapping_makes_one_head_each():
    params = presets.resolve_model("conv", size="micro", tracks={"human": 3, "mouse": 2})
    mp = params["model"]
    assert "head" not in mp
    assert mp["head_human"]["units"] == 3 and mp["head_mouse"]["units"] == 2
    shapes = build.model_summary(params)["output_shape"]
    assert shapes == [(None, 128, 3), (None, 128, 2)]


def test_plain_params_file_passes_through():
    assert presets.resolve_model(DEMO) == json.loads(DEMO.read_text())
    presets.resolve_model(DEMO, data=demo_statistics())


def test_preset_file_in_another_directory(tmp_path):
    """A workflow's own preset folder: names resolve there, paths pass through."""
    (tmp_path / "conv.json").write_text((Path(presets.PRESET_DIR) / "conv.json").read_text())
    path = presets.preset_file("conv", tmp_path)
    assert path == tmp_path / "conv.json" and presets.preset_file(path) == path
    assert presets.presets(tmp_path) == ["conv"]
    assert presets.resolve_model(path) == presets.resolve_model("conv")
    with pytest.raises(SeqnnError, match=r"model: no preset 'enformer'; presets: conv \("):
        presets.preset_file("enformer", tmp_path)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (dict(model="enformr"), r"model: no preset 'enformr'; presets: borzoi, conv,"),
        (dict(model="conv", widht=8), r"preset conv: unknown scale key 'widht'; scale keys: "),
        (dict(model="conv", size="tiny"), r"preset conv: no size 'tiny'; sizes: micro"),
        (dict(model=DEMO, width=8), r"demo.json: not a preset \(no 'scale' block\); drop width"),
        (dict(model={"size": "micro"}), r"model: a mapping needs a 'preset' key"),
        (
            dict(model="conv", seq_length=4096, data={"seq_length": 2048}),
            r"model: seq_length 4096 differs from the data's seq_length 2048; leave it out",
        ),
        (
            dict(model="enformer", size="micro", pool_width=24),
            r"preset enformer: model.trunk\[1\].repeat: cannot evaluate '=log2\(pool_width\) - 1'"
            r": 24 is not a power of 2",
        ),
        (
            dict(model=DEMO, data={"seq_length": 2048, "pool_width": 32, "crop_bp": 0}),
            r"demo.json: the model outputs 128 bins, not the data's 64; change its pooling",
        ),
        (
            dict(model="enformer", size="micro", data={"crop_bp": 8}),  # 8 bp: not a whole bin
            r"preset enformer: the model outputs 128 bins, not the data's 127",
        ),
    ],
)
def test_resolve_errors(call, message):
    with pytest.raises(SeqnnError, match=message):
        presets.resolve_model(**call)


# ---------------------------------------------------------------------------------------------
# Receptive fields (no TensorFlow)


def basenji2_dilations():
    """Dilation rates of Basenji2's 11 layers: x1.5 each, rounded half to even."""
    rates, rate = [], 1.0
    for _ in range(11):
        rates.append(int(round(rate)))
        rate = round(rate * 1.5)
    return rates


def test_receptive_fields():
    assert basenji2_dilations() == [1, 2, 3, 4, 6, 9, 14, 21, 32, 48, 72]
    # stem k15 + pool 2 (16 bp), 6 x (conv k5 + pool 2) at jumps 2..64 bp, then the dilated
    # k3 convolutions at 128 bp; the crop and 1x1 layers add nothing
    tower = 16 + sum(5 * 2**i for i in range(1, 7))
    basenji2 = tower + 2 * 128 * sum(basenji2_dilations())
    dilated = presets.resolve_model("dilated_conv")
    assert receptive_field(dilated) == basenji2 == 54_918
    assert receptive_field(
        presets.load_params(REPO / "tests" / "data" / "params" / "basenji2_human.json")
    ) == basenji2
    # conv micro: stem (16 bp), 3 x (conv k5 + pool 2) at jumps 2, 4, 8, one conv k5 at 16 bp
    conv_micro = presets.resolve_model("conv", size="micro")
    assert receptive_field(conv_micro) == 16 + 5 * (2 + 4 + 8) + 4 * 16 == 150
    for name in ("conv_gru", "conv_transformer", "conv_mlp", "enformer", "borzoi", "explainn"):
        assert receptive_field(presets.resolve_model(name, size="micro")) is None


# ---------------------------------------------------------------------------------------------
# New blocks: shape, parameter count, `.keras` round trip


CONV8 = {"name": "conv_block", "filters": 8, "kernel_size": 3}
FINAL8 = dense(8, 3)


def gru(cin, units):
    """Keras GRU (reset_after): kernel, recurrent kernel, two biases per gate."""
    return 3 * units * (cin + units + 2)


BLOCK_CASES = {
    "pool_avg": (tiny([CONV8, {"name": "pool", "pool_size": 4, "pool_type": "avg"}]),
                 (None, 16, 3), conv(3, 4, 8) + FINAL8, 0),
    "pool_attention": (  # Enformer: one logit per channel, a dense 8 -> 8 without bias
        tiny([CONV8, {"name": "pool", "pool_type": "attention"}]),
        (None, 32, 3), conv(3, 4, 8) + 8 * 8 + FINAL8, 0),
    "adaptive_pool": (tiny([CONV8, {"name": "adaptive_pool", "length": 10, "pool_type": "max"}]),
                      (None, 10, 3), conv(3, 4, 8) + FINAL8, 0),
    "channel_transform": (
        tiny([{"name": "channel_transform", "filters": 6}], norm_type="batch"),
        (None, 64, 3), dense(4, 6, bias=False) + norm(6) + dense(6, 3), 2 * 6),
    "gru": (tiny([CONV8, {"name": "gru", "units": 5, "dropout": 0.1}]),
            (None, 64, 3), conv(3, 4, 8) + 2 * gru(8, 5) + dense(10, 3), 0),
    "explainn": (
        # 3 units: conv k5 (64 -> 60), BN, exp, max pool 3 (-> 20); per unit dense 20 -> 6 and
        # 6 -> 4 bins, each with batch norm over (bins, units)
        tiny([{"name": "explainn", "units": 3, "length": 4, "kernel_size": 5, "pool_size": 3,
               "hidden": 6}]),
        (None, 4, 3),
        conv(5, 4, 3) + norm(3) + 3 * (20 * 6 + 6) + norm(18) + 3 * (6 * 4 + 4) + norm(12)
        + dense(3, 3),
        2 * (3 + 18 + 12)),
    "conv_head": (tiny([CONV8], head={"name": "conv_head", "units": 3, "crop": 2, "length": 6,
                                      "pool_type": "max", "activation": "sigmoid"}),
                  (None, 6, 3), conv(3, 4, 8) + FINAL8, 0),
    "mlp_head": (
        tiny([{"name": "conv_block", "filters": 4, "pool_size": 8}],
             head={"name": "mlp_head", "units": 3, "length": 5, "hidden": [7],
                   "norm_type": "layer", "activation": "exp"}),
        (None, 5, 3), conv(1, 4, 4) + dense(32, 7, bias=False) + norm(7) + dense(7, 15), 0),
    "conv_dna_unscaled": (  # Enformer's stem: no Scale on the residual branch
        tiny([{"name": "conv_dna", "filters": 8, "kernel_size": 5, "use_bias": True,
               "residual": True, "scale_residual": False}], norm_type="batch"),
        (None, 64, 3), conv(5, 4, 8) + norm(8) + conv(1, 8, 8) + FINAL8, 2 * 8),
    "res_tower_unscaled": (
        tiny([{"name": "res_tower", "filters_init": 8, "filters_mult": 1, "repeat": 1,
               "kernel_size": 3, "scale_residual": False, "pool_type": "attention"}],
             norm_type="batch"),
        (None, 32, 3), norm(4) + conv(3, 4, 8) + norm(8) + conv(1, 8, 8) + 8 * 8 + FINAL8,
        2 * (4 + 8)),
}


@pytest.mark.parametrize("case", BLOCK_CASES)
def test_block(case, tmp_path):
    params, shape, trainable, non_trainable = BLOCK_CASES[case]
    model = build.build_model(params, strand_pair=[1, 0, 2])
    assert tuple(model.output.shape) == shape
    assert target_length(params) == shape[1]
    assert summary(params)[1:] == (trainable, non_trainable)

    randomize(model)
    path = tmp_path / "model.keras"
    build.save_model(model, path, params=params)
    loaded, _ = build.load_model(path)
    x = one_hot(2, 64)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)), expected, rtol=1e-6
    )


def test_block_choices_checked():
    params = tiny([{"name": "adaptive_pool", "length": 4, "pool_type": "attention"}])
    with pytest.raises(SeqnnError, match=r"pool_type='attention' is not one of \"avg\", \"max\""):
        parse_params(params)


def test_adaptive_pool_matches_pytorch_windows():
    x = np.random.default_rng(0).normal(size=(2, 10, 3)).astype("float32")
    windows = [(0, 3), (2, 5), (5, 8), (7, 10)]  # floor(i * 10 / 4) .. ceil((i + 1) * 10 / 4)
    for pool_type, reduce in (("avg", np.mean), ("max", np.max)):
        out = keras.ops.convert_to_numpy(layers.AdaptivePool1D(4, pool_type)(x))
        expected = np.stack([reduce(x[:, a:b], axis=1) for a, b in windows], axis=1)
        np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_unit_dense_maps_each_unit_alone():
    x = np.random.default_rng(1).normal(size=(2, 6, 3)).astype("float32")
    layer = layers.UnitDense(4)
    out = keras.ops.convert_to_numpy(layer(x))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in (layer.kernel, layer.bias))
    expected = np.stack([x[:, :, u] @ kernel[u] + bias[:, u] for u in range(3)], axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    # He-normal per unit, std sqrt(2 / 50) over each unit's own 50 inputs (all 150: 0.58 here)
    wide = layers.UnitDense(40)
    wide.build((None, 50, 3))
    assert 0.9 < keras.ops.convert_to_numpy(wide.kernel).std() * np.sqrt(50 / 2) < 1.1


def test_explainn_units_are_independent():
    """Changing one unit's filter changes only that unit's output channel."""
    params = presets.resolve_model("explainn", size="micro")
    model = build.build_model(params)
    head = next(la for la in reversed(model.layers) if isinstance(la, keras.layers.Dense))
    trunk = keras.Model(model.input, head.input)  # the units' outputs, [bins, units]
    conv_layer = next(la for la in model.layers if isinstance(la, keras.layers.Conv1D))
    x = one_hot(2, 2048)
    before = keras.ops.convert_to_numpy(trunk(x, training=False))
    kernel = keras.ops.convert_to_numpy(conv_layer.kernel).copy()
    kernel[:, :, 0] = np.random.default_rng(2).normal(size=kernel.shape[:2])
    conv_layer.kernel.assign(kernel)
    after = keras.ops.convert_to_numpy(trunk(x, training=False))
    assert before.shape == (2, 128, 8)
    changed = np.abs(after - before).max(axis=(0, 1)) > 0
    assert changed.tolist() == [True] + [False] * 7


# ---------------------------------------------------------------------------------------------
# CLI


def test_summary_cli(capsys):
    cli.main(["summary", "--preset", "conv", "--size", "micro", "--scale", "width=16", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["output_shape"] == [None, 128, 4]
    with pytest.raises(SystemExit):
        cli.main(["summary", "config/models/demo.json", "--preset", "conv"])


# ---------------------------------------------------------------------------------------------
# Default (published) sizes and the README table


@pytest.fixture(scope="module")
def summaries():
    return [build.preset_summary(name, size) for name in PRESETS for size in (None, "micro")]


def default_summary(summaries, name):
    return next(s for s in summaries if s["preset"] == name and s["size"] == "default")


@pytest.mark.slow
def test_enformer_published_size(summaries):
    """Enformer (Avsec et al. 2021): 196,608 bp in, 896 bins of 128 bp, human and mouse heads."""
    s = default_summary(summaries, "enformer")
    assert (s["seq_length"], s["bin_width"]) == (196_608, 128)
    assert s["output_shape"] == [(None, 896, 5313), (None, 896, 1643)]
    # stem: conv k15 with bias, residual BN-GELU-conv 1x1, attention pool (768 x 768 logits)
    expected = conv(15, 4, 768) + norm(768) + conv(1, 768, 768) + 768 * 768
    tower = [768, 896, 1024, 1152, 1280, 1536]  # 768 -> 1536 geometric, multiples of 128
    for cin, f in zip([768, *tower], tower):
        expected += norm(cin) + conv(5, cin, f) + norm(f) + conv(1, f, f) + f * f
    # 11 transformer blocks: value size 1536 / 8 heads, 192 relative position features
    ffn = dense(1536, 3072) + dense(3072, 1536)
    expected += 11 * (norm(1536) + mha(1536, heads=8, key=64, pos=192) + norm(1536) + ffn)
    expected += norm(1536) + conv(1, 1536, 3072)  # final pointwise
    expected += dense(3072, 5313) + dense(3072, 1643)
    assert s["trainable_params"] == expected == 251_221_292


@pytest.mark.slow
def test_borzoi_published_size(summaries):
    """Borzoi (Linder et al. 2025; calico/borzoi params): 524,288 bp in, 6,144 bins of 32 bp."""
    s = default_summary(summaries, "borzoi")
    assert (s["seq_length"], s["bin_width"]) == (524_288, 32)
    assert s["output_shape"] == [(None, 6144, 7611), (None, 6144, 2608)]
    tower = [608, 736, 896, 1056, 1280, 1536]  # 608 -> 1536 geometric, multiples of 32
    expected = conv(15, 4, 512)
    expected += sum(norm(cin) + conv(5, cin, f) for cin, f in zip([512, *tower], tower))
    ffn = dense(1536, 3072) + dense(3072, 1536)
    expected += 8 * (norm(1536) + mha(1536, heads=8, key=64, pos=32) + norm(1536) + ffn)
    for skip in (1536, 1280):  # U-net skips: the tower's last two pre-pool outputs
        expected += norm(1536) + norm(skip) + dense(1536, 1536) + dense(skip, 1536)
        expected += sep(3, 1536, 1536)
    expected += norm(1536) + conv(1, 1536, 1920) + dense(1920, 7611) + dense(1920, 2608)
    assert s["trainable_params"] == expected == 190_902_667


@pytest.mark.slow
def test_dilated_conv_is_basenji2(summaries):
    s = default_summary(summaries, "dilated_conv")
    assert s["output_shape"] == (None, 896, 5313)
    assert s["trainable_params"] == 30_088_228  # as tests/data/params/basenji2_human.json


@pytest.mark.slow
def test_readme_preset_table_is_current(summaries):
    readme = (REPO / "config" / "models" / "README.md").read_text()
    table = presets.presets_markdown(summaries)
    assert table in readme, (
        "regenerate the preset table of config/models/README.md with "
        "seqnn.model.presets.presets_markdown(summaries):\n" + table
    )
