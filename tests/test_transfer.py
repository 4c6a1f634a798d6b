"""Fine-tuning with a `transfer` block (baskerville's hound_transfer.py vocabulary).

- parameter counts as fine-tuning sees them equal baskerville's: its own figures for its
  borzoilite configs (tests/integration/test_transfer.sh of calico/baskerville, one comment per
  mode) and, on the Borzoi preset at published size, the arithmetic of its code worked by hand;
- merged adapters (LoRA, IA3, LoCon) compute what the adapted model computed, in the original
  architecture and params; Houlsby adapters are recorded, so the file and the params rebuild it;
- restore from a seqnn `.keras` or a baskerville `.h5`, whole or trunk only;
- bad input;
- on the demo (tests/transfer_demo.py), fine-tuning a pretrained trunk to a track it never saw
  beats training the same model from scratch in every mode, and trains only what it should.
"""

import json
import logging

import numpy as np
import pytest
from helpers import REPO

from seqnn import SeqnnError, cli
from seqnn.model.params import transfer_options

pytest.importorskip("tensorflow")
import keras  # noqa: E402
import transfer_demo as TD  # noqa: E402
from test_train import write_data  # noqa: E402

from seqnn.model import adapters  # noqa: E402
from seqnn.model.build import build_model, build_parts, load_model, save_model  # noqa: E402
from seqnn.model.presets import resolve_model  # noqa: E402
from seqnn.model.pretrained import model_layers, restore_weights  # noqa: E402
from seqnn.model.transfer import exported, transfer_model, transfer_summary  # noqa: E402
from seqnn.train.loop import train  # noqa: E402
from seqnn.train.transfer import FineTune  # noqa: E402

PRETRAINED = REPO.parent / "shared" / "data" / "pretrained" / "borzoi_mini"


def adapter(name, **keys):
    return {"mode": "adapter", "adapter": name, **keys}


# ---------------------------------------------------------------------------------------------
# Counts against baskerville

# baskerville's tests/data/transfer/json/borzoilite_*.json (model block), in seqnn's vocabulary
BORZOILITE = {
    "seq_length": 393216, "augment_rc": True, "augment_shift": 3, "activation": "gelu",
    "norm_type": "batch", "bn_momentum": 0.9, "kernel_initializer": "lecun_normal",
    "l2_scale": 1e-6,
    "trunk": [
        {"name": "conv_dna", "filters": 320, "kernel_size": 11, "norm_type": None,
         "activation": "linear", "pool_size": 2},
        {"name": "res_tower", "filters_init": 384, "filters_end": 768, "divisible_by": 16,
         "kernel_size": 5, "num_convs": 1, "pool_size": 2, "repeat": 6},
        {"name": "transformer_tower", "key_size": 64, "heads": 4, "num_position_features": 32,
         "dropout": 0.2, "mha_l2_scale": 1e-8, "l2_scale": 1e-8,
         "kernel_initializer": "he_normal", "repeat": 8},
        {"name": "unet_conv", "kernel_size": 3, "upsample_conv": True},
        {"name": "unet_conv", "kernel_size": 3, "upsample_conv": True},
        {"name": "Cropping1D", "cropping": 3072},
    ],
    "head_human": {"name": "final", "units": 68, "activation": "softplus"},
}
# The transfer blocks of those files and the trainable counts test_transfer.sh states for them.
BORZOILITE_CASES = {
    "full": ({"mode": "full"}, 43_744_164),
    "linear": ({"mode": "linear"}, 52_292),
    "houlsby": (adapter("houlsby", adapter_latent=8), 285_892),
    "lora": (adapter("lora", adapter_latent=8), 216_132),
    "ia3": (adapter("ia3"), 72_772),
    "locon4": (adapter("locon", conv_select=4), 270_404),
    "se4": (adapter("houlsby_se", adapter_latent=8, conv_select=4, conv_latent=16), 366_788),
}


def lite_by_hand(case):
    """borzoilite's trainable count from baskerville's code: 8 transformer blocks of 768
    channels (4 heads, keys 64: q/k 256 wide, v 768), res_tower filters 384 448 512 576 672 768
    (kernel 5; inputs 320 384 ...), head 768 -> 68."""
    head = 768 * 68 + 68
    houlsby = 8 * (2 * (2 * 768 * 8 + 8 + 768) + 2 * 2 * 768)  # two adapters, two layer norms
    lora = 8 * ((768 * 8 + 8 * 256) + (768 * 8 + 8 * 768))  # q and v, rank 8
    ia3 = 8 * (256 + 768 + 2 * 768)  # k, v and the feed-forward hidden units
    last4 = [(448, 512), (512, 576), (576, 672), (672, 768)]  # the last 4 of 7 Conv1D
    locon = sum(5 * cin * 4 + 4 * cout for cin, cout in last4)  # rank conv_latent 4
    se = sum(2 * 16 * cout for _, cout in last4)  # bottleneck conv_latent 16
    return {"linear": head, "houlsby": head + houlsby, "lora": head + lora, "ia3": head + ia3,
            "locon4": head + lora + locon, "se4": head + houlsby + se}.get(case)


@pytest.mark.parametrize("case", BORZOILITE_CASES)
def test_borzoilite_counts_equal_baskervilles(case):
    transfer, expected = BORZOILITE_CASES[case]
    summary = transfer_summary({"model": BORZOILITE, "transfer": transfer})
    assert summary["trainable_params"] == expected
    assert lite_by_hand(case) in (None, expected)


def borzoi_by_hand():
    """Borzoi at published size (1536 channels, 8 heads, keys 64: q/k 512 wide, v 1536; eight
    blocks) with baskerville's defaults (adapter_latent 8, conv_select 4, conv_latent 4):
    trainable parameters besides the heads, and the unfrozen layer norms."""
    d, keys, blocks = 1536, 512, 8
    norms = blocks * 2 * 2 * d
    houlsby = blocks * 2 * (2 * d * 8 + 8 + d)
    lora = blocks * ((d * 8 + 8 * keys) + (d * 8 + 8 * d))
    lora_full = lora + blocks * ((d * 8 + 8 * keys) + (d * 8 + 8 * d))  # + k, output
    ia3 = blocks * (keys + d + 2 * d)
    # Conv1D: conv_dna, res_tower 608 736 896 1056 1280 1536 (kernel 5), conv_nac 1920 (1);
    # the last four get rank-4 LoCon (or rank-4 squeeze-excite)
    last4 = [(896, 1056, 5), (1056, 1280, 5), (1280, 1536, 5), (1536, 1920, 1)]
    locon = sum(k * cin * 4 + 4 * cout for cin, cout, k in last4)
    se = sum(2 * 4 * cout for _, cout, _ in last4)
    return {"houlsby": houlsby + norms, "lora": lora, "lora_full": lora_full, "ia3": ia3,
            "locon": lora + locon, "houlsby_se": houlsby + norms + se}, norms


def test_borzoi_counts_by_hand():
    params = resolve_model("borzoi")
    full = transfer_summary({**params, "transfer": {"mode": "full"}})
    total = full["trainable_params"] + full["non_trainable_params"]
    linear = transfer_summary({**params, "transfer": {"mode": "linear"}})
    heads = 1920 * 7611 + 7611 + 1920 * 2608 + 2608
    assert linear["trainable_params"] == heads
    assert linear["non_trainable_params"] == total - heads
    added, norms = borzoi_by_hand()
    for name, trainable in added.items():
        got = transfer_summary({**params, "transfer": adapter(name)})
        frozen_base = total - heads - (norms if name.startswith("houlsby") else 0)
        assert got["trainable_params"] == heads + trainable, name
        assert got["non_trainable_params"] == frozen_base, name


def test_summary_json_honours_transfer(tmp_path, capsys):
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"model": BORZOILITE, "transfer": adapter("lora")}))
    assert cli.main(["summary", str(path), "--json"]) in (None, 0)
    assert json.loads(capsys.readouterr().out)["trainable_params"] == 216_132


# ---------------------------------------------------------------------------------------------
# A tiny model with attention: merging, recording, restoring

SEQ = 64


def tiny(units=3, **model):
    return {"model": {
        "seq_length": SEQ, "augment_rc": True, "norm_type": "batch", "trunk": [
            {"name": "conv_dna", "filters": 16, "kernel_size": 5, "pool_size": 2},
            {"name": "conv_tower", "filters_init": 16, "filters_mult": 1.0, "kernel_size": 3,
             "pool_size": 2, "repeat": 2},
            {"name": "transformer_tower", "key_size": 8, "heads": 2, "num_position_features": 4,
             "dropout": 0.1, "repeat": 2}],
        "head": {"name": "final", "units": units, "activation": "softplus"}, **model}}


def one_hot(n=4, seed=0):
    codes = np.random.default_rng(seed).integers(0, 4, (n, SEQ))
    return np.eye(4, dtype="float32")[codes]


def randomise(model, seed=1):
    """Adapter weights drawn at random: freshly made ones are (near) the identity; so are the
    attention output projections (zero at first, as if trained: else q, k, v do not matter)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "embedding_layer/kernel" in w.path:
            w.assign(0.3 * rng.standard_normal(w.shape))
    for layer in model.layers:
        if isinstance(layer, adapters.ADAPTER_LAYERS):
            base = {id(w) for w in getattr(layer, "layer", layer).weights}
            for w in layer.weights:
                if id(w) not in base or isinstance(layer, adapters.ADDED):
                    w.assign(1 + 0.3 * rng.standard_normal(w.shape) if "ia3" in w.path
                             else 0.3 * rng.standard_normal(w.shape))


@pytest.mark.parametrize("name", ["lora", "lora_full", "ia3", "locon"])
def test_merged_adapters_compute_the_same_in_the_original_architecture(name):
    params = {**tiny(), "transfer": adapter(name, conv_select=2)}
    opts = transfer_options(params)
    adapted = transfer_model(*build_parts(params), opts)
    randomise(adapted)
    x = one_hot()
    before = np.asarray(adapted(x, training=False))
    merged, saved = exported(adapted, params, opts)
    after = np.asarray(merged(x, training=False))
    # relative to the outputs' scale (up to ~14 here): merged weights sum in another order
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()
    assert saved == tiny()  # the transfer block dropped, nothing recorded
    original = build_model(saved)
    assert [w.shape for w in original.weights] == [w.shape for w in merged.weights]
    assert [type(la) for la in original.layers] == [type(la) for la in merged.layers]
    original.set_weights(merged.get_weights())
    np.testing.assert_allclose(original(x, training=False), after, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["houlsby", "houlsby_se"])
def test_houlsby_adapters_are_recorded_and_reload(name, tmp_path):
    params = {**tiny(), "transfer": adapter(name, adapter_latent=4, conv_select=2,
                                            conv_latent=3)}
    opts = transfer_options(params)
    adapted = transfer_model(*build_parts(params), opts)
    randomise(adapted)
    x = one_hot()
    before = np.asarray(adapted(x, training=False))
    kept, saved = exported(adapted, params, opts)
    record = {"adapter": name, "adapter_latent": 4}
    if name == "houlsby_se":
        record.update(conv_select=2, se_rank=3)
    assert saved == {"model": {**tiny()["model"], **record}}
    save_model(kept, tmp_path / "m.keras", params=saved)
    loaded, meta = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(x, training=False), before, rtol=0, atol=1e-6)
    rebuilt = build_model(meta["params"])
    rebuilt.set_weights(loaded.get_weights())
    np.testing.assert_allclose(rebuilt(x, training=False), before, rtol=0, atol=1e-6)
    blocks, convs = 2, (1 if name == "houlsby_se" else 0) * 2
    assert sum(isinstance(la, adapters.HoulsbyAdapter) for la in rebuilt.layers) == 2 * blocks
    assert sum(isinstance(la, adapters.SqueezeExciteAdapter) for la in rebuilt.layers) == convs


def test_restore_keras_whole_and_trunk(tmp_path):
    source = build_model(tiny())
    save_model(source, tmp_path / "pre.keras", params=tiny())
    same = build_model(tiny())
    assert restore_weights(same, tmp_path / "pre.keras") == len(source.weights)
    for a, b in zip(same.weights, source.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    new_head, trunk = build_parts(tiny(units=5))
    head_before = new_head.weights[-1].numpy()
    restore_weights(new_head, tmp_path / "pre.keras", trunk)
    x = one_hot()
    trunk_of = [keras.Model(m.inputs, m.layers[-4].output) for m in (new_head, source)]
    np.testing.assert_array_equal(trunk_of[0](x), trunk_of[1](x))
    np.testing.assert_array_equal(new_head.weights[-1].numpy(), head_before)
    with pytest.raises(SeqnnError, match=r"pre.keras: does not fit .*--trunk"):
        restore_weights(build_model(tiny(units=5)), tmp_path / "pre.keras")
    wider = tiny()
    wider["model"]["trunk"] = [{**wider["model"]["trunk"][0], "filters": 24},
                               *wider["model"]["trunk"][1:]]
    with pytest.raises(SeqnnError, match="does not fit.*trunk is not the file's"):
        model, trunk = build_parts(wider)
        restore_weights(model, tmp_path / "pre.keras", trunk)


@pytest.mark.skipif(not PRETRAINED.is_dir(), reason=f"{PRETRAINED} is absent")
def test_restore_baskerville_h5_equals_reference():
    ref = np.load(PRETRAINED / "reference.npz")
    x = np.eye(5, 4, dtype=np.float32)[ref["codes"]]
    params = json.loads((PRETRAINED / "params.json").read_text())
    del params["model"]["head_mouse"]
    model = build_model(params)
    restore_weights(model, PRETRAINED / "model0.h5")
    err = np.abs(np.asarray(model(x, training=False)) - ref["preds0"]).max()
    assert err <= 1e-4 * np.abs(ref["preds0"]).max()
    new = json.loads(json.dumps(params))
    new["model"]["head_human"]["units"] = 2
    model, trunk = build_parts(new)
    restore_weights(model, PRETRAINED / "model0.h5", trunk)  # a full file, its head dropped
    trunk_out = keras.Model(model.inputs, model.layers[-4].output)
    err = np.abs(np.asarray(trunk_out(x, training=False)) - ref["trunk"]).max()
    assert err <= 1e-4 * np.abs(ref["trunk"]).max()


def test_cli_train_restores_the_trunk_and_merges(tmp_path, capsys):
    pre = build_model(tiny(units=3))
    for w in pre.weights:  # a trained attention output (it starts at zero: no gradient to LoRA)
        if "embedding_layer/kernel" in w.path:
            w.assign(0.3 * np.random.default_rng(0).standard_normal(w.shape))
    save_model(pre, tmp_path / "pre.keras", params=tiny(units=3))
    data = write_data(tmp_path / "data")  # 64 bp, 8 bins, 2 tracks
    params = {**tiny(units=2), "train": {"batch_size": 8, "learning_rate": 0.01},
              "transfer": adapter("lora")}
    (tmp_path / "p.json").write_text(json.dumps(params))
    cli.main(["train", str(tmp_path / "p.json"), str(data), "-o", str(tmp_path / "out"),
              "--restore", str(tmp_path / "pre.keras"), "--trunk", "--epochs", "1"])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["epochs"] == 1
    model, meta = load_model(tmp_path / "out" / "model_best.keras")
    assert meta["params"] == {k: v for k, v in params.items() if k != "transfer"}
    assert [type(la) for la in model.layers] == [type(la) for la in build_model(tiny(2)).layers]
    kept = [(w.path, np.asarray(w)) for w in pre.weights[:-2]]  # the trunk
    changed = {path.rsplit("/", 1)[0].split("/")[-1] for (path, a), b in
               zip(kept, model.weights, strict=False) if a.tobytes() != np.asarray(b).tobytes()}
    assert changed == {"q_layer", "v_layer"}


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("block, message", [
    ({"mode": "partial"}, "transfer.mode 'partial' is not one of full, linear, adapter"),
    ({"mode": "adapter", "adapter": "prefix"}, "needs transfer.adapter, one of houlsby"),
    ({"mode": "adapter"}, r"needs transfer.adapter.*got None"),
    ({"mode": "adapter", "adapter": "lora", "rank": 4}, "unknown transfer key 'rank'"),
    ({"mode": "adapter", "adapter": "lora", "adapter_latent": 0}, "adapter_latent must be a pos"),
])
def test_bad_transfer_blocks(block, message):
    with pytest.raises(SeqnnError, match=message):
        transfer_options({"transfer": block}, "p.json")


def test_full_mode_with_adapter_keys_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="seqnn"):
        opts = transfer_options({"transfer": {"mode": "full", "adapter": "lora",
                                              "lora_alpha": 8}}, "p.json")
    assert opts["adapter"] is None
    assert "p.json: transfer.mode full uses no adapter; ignoring adapter, lora_alpha" in caplog.text


def test_adapter_needs_attention_and_enough_convolutions():
    conv_only = tiny()
    conv_only["model"]["trunk"] = conv_only["model"]["trunk"][:2]
    for name in ("houlsby", "lora", "lora_full", "ia3", "houlsby_se"):
        with pytest.raises(SeqnnError, match=f"adapter {name}: the model has no attention"):
            transfer_summary({**conv_only, "transfer": adapter(name, conv_select=1)})
    locon = transfer_summary({**conv_only, "transfer": adapter("locon", conv_select=2)})
    assert locon["trainable_params"] == (3 * 16 * 4 + 4 * 16) * 2 + 16 * 3 + 3
    with pytest.raises(SeqnnError, match="conv_select 4 exceeds the 3 standard convolutions"):
        transfer_summary({**tiny(), "transfer": adapter("locon")})
    with pytest.raises(SeqnnError, match="model.adapter 'lora' is not one of houlsby"):
        build_model({"model": {**tiny()["model"], "adapter": "lora"}})


def test_trunk_needs_restore(tmp_path):
    with pytest.raises(SeqnnError, match="--trunk restores a pretrained trunk; give --restore"):
        FineTune.of(tiny(), None, True)
    assert FineTune.of(tiny(), None, False) is None
    assert FineTune.of(tiny(), tmp_path / "w.keras").opts["mode"] == "full"


def test_locon_trains_the_first_convolution_whole_with_all_selected():
    got = transfer_summary({**tiny(), "transfer": adapter("locon", conv_select=3)})
    attention = 2 * ((16 * 8 + 8 * 16) + (16 * 8 + 8 * 16))  # q (2 heads x 8) and v, rank 8
    first = 5 * 4 * 16  # conv_dna's kernel (no bias before batch norm; the norm stays frozen)
    locon = 2 * (3 * 16 * 4 + 4 * 16)
    assert got["trainable_params"] == attention + first + locon + 16 * 3 + 3
    full = transfer_summary({**tiny(), "transfer": {"mode": "full"}})
    total = full["trainable_params"] + full["non_trainable_params"]
    assert got["non_trainable_params"] == total - first - 16 * 3 - 3


# ---------------------------------------------------------------------------------------------
# Proof on the demo: a pretrained trunk fine-tuned to a new track beats training from scratch

# trainable parameters of the demo model (tests/transfer_demo.py: 32 channels, 2 heads of key 8
# so q/k 16 wide and v 32, one transformer block, 7 Conv1D of which the last two are 3 and 1
# wide, a 32 -> 1 head) per mode, by hand (conv_select 2, other keys baskerville's defaults)
HEAD = 32 + 1
LORA = (32 * 8 + 8 * 16) + (32 * 8 + 8 * 32)
DEMO_COUNTS = {
    "linear": HEAD,
    "houlsby": HEAD + 2 * (2 * 32 * 8 + 8 + 32) + 2 * 2 * 32,
    "lora": HEAD + LORA,
    "lora_full": HEAD + 2 * LORA,
    "ia3": HEAD + 16 + 32 + 64,
    "locon": HEAD + LORA + (3 * 32 * 4 + 4 * 32) + (1 * 32 * 4 + 4 * 32),
    "houlsby_se": HEAD + 2 * (2 * 32 * 8 + 8 + 32) + 2 * 2 * 32 + 2 * (2 * 4 * 32),
}
# what fine-tuning may change in the trunk: (layer kind, weight role) per mode; every other
# trunk tensor (batch-norm statistics included) must stay byte-identical
CHANGES = {
    "linear": set(),
    "houlsby": {("layer norm", "gamma"), ("layer norm", "beta")},
    "houlsby_se": {("layer norm", "gamma"), ("layer norm", "beta")},
    "lora": {("attention", "q_layer/kernel"), ("attention", "v_layer/kernel")},
    "lora_full": {("attention", r + "_layer/kernel") for r in ("q", "k", "v", "embedding")},
    "ia3": {("attention", "k_layer/kernel"), ("attention", "v_layer/kernel"),
            ("dense", "kernel")},
    "locon": {("attention", "q_layer/kernel"), ("attention", "v_layer/kernel"),
              ("convolution", "kernel")},
}
# Best val r after 3 epochs (python tests/transfer_demo.py OUT, CPU, seeds as here): scratch
# 0.140; full 0.856, linear 0.814, houlsby 0.798, lora 0.836, lora_full 0.863, ia3 0.818, locon
# 0.841, houlsby_se 0.860 (the pretrained model: 0.379 on its four tracks).
MARGIN = 0.3  # every mode's best val r must exceed scratch's by this


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo data, a model pretrained on its four tracks, and the scratch baseline."""
    root = tmp_path_factory.mktemp("transfer")
    data = TD.build(root)
    train(TD.params(4), str(data["pretrain"]), str(root / "pre"), splits=TD.SPLITS,
          epochs=TD.PRETRAIN_EPOCHS, threads=2)
    scratch = train(TD.params(1, learning_rate=TD.FINE_TUNE_LR), str(data["new"]),
                    str(root / "scratch"), splits=TD.SPLITS, epochs=TD.FINE_TUNE_EPOCHS,
                    threads=2)
    return {**data, "root": root, "pre": root / "pre" / "model_best.keras",
            "scratch": scratch["best_val_pearsonr"]}


def trunk_tensors(path):
    """(kind, role, array) of every trunk tensor of a saved model, adapters left out."""
    saved, meta = load_model(path)
    model, trunk = build_parts(meta["params"])
    model.set_weights(saved.get_weights())
    names = {la.name for la in model.layers
             if id(la) in trunk and not isinstance(la, adapters.ADAPTER_LAYERS)}
    return [(la.kind, role, np.asarray(var)) for la in model_layers(model) if la.name in names
            for role, _, var in la.weights]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "linear", "houlsby", "lora", "lora_full", "ia3",
                                  "locon", "houlsby_se"])
def test_fine_tuning_beats_scratch_and_trains_what_it_should(demo, mode):
    block = {"mode": mode} if mode in ("full", "linear") else adapter(mode, conv_select=2)
    p = TD.params(1, block, learning_rate=TD.FINE_TUNE_LR)
    if mode != "full":
        assert transfer_summary(p)["trainable_params"] == DEMO_COUNTS[mode]
    out = demo["root"] / mode
    got = train(p, str(demo["new"]), str(out), splits=TD.SPLITS, epochs=TD.FINE_TUNE_EPOCHS,
                threads=2, restore=str(demo["pre"]), trunk=True)
    r = got["best_val_pearsonr"]
    with open(out / "history.tsv") as f:
        seconds = [float(row.split("\t")[-1]) for row in list(f)[2:]]  # after the first epoch
    print(f"{mode}: val r {r:.3f} vs scratch {demo['scratch']:.3f}; "
          f"{sum(seconds) / len(seconds):.2f} s per epoch")
    assert r > demo["scratch"] + MARGIN
    if mode == "full":
        return
    before, after = trunk_tensors(demo["pre"]), trunk_tensors(out / "model_best.keras")
    assert [(k, r) for k, r, _ in before] == [(k, r) for k, r, _ in after]
    changed = {(k, r) for (k, r, a), (_, _, b) in zip(before, after, strict=True)
               if a.tobytes() != b.tobytes()}
    assert changed == CHANGES[mode]
