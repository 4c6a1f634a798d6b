"""Importing Basenji / baskerville weights: outputs equal the reference implementation's.

The reference vectors (../shared/data/pretrained, see its README) were made by baskerville from
randomised weights saved with SeqNN.save; an importer that puts any tensor in the wrong place
changes the outputs.
"""

import json
import logging

import h5py
import numpy as np
import pyBigWig
import pytest
from conftest import write_tiny_sheet
from helpers import REPO

import seqnn
from seqnn import SeqnnError, cli
from seqnn.model import pretrained
from seqnn.model.build import load_model as load_with_meta

PRETRAINED = REPO.parent / "shared" / "data" / "pretrained"
pytestmark = pytest.mark.skipif(not PRETRAINED.is_dir(),
                                reason=f"{PRETRAINED} is absent (the shared reference vectors)")
BORZOI, BASENJI = PRETRAINED / "borzoi_mini", PRETRAINED / "basenji_mini"

# (model folder, weights file, head, reference output, is a trunk file)
CASES = [
    (BORZOI, "model0.h5", 0, "preds0", False),
    (BORZOI, "model1.h5", 1, "preds1", False),
    (BORZOI, "trunk.h5", 0, "trunk", True),
    (BASENJI, "model0.h5", 0, "preds0", False),
    (BASENJI, "trunk.h5", 0, "trunk", True),
]


def one_hot(codes):
    """float32 [N, L, 4] of A, C, G, T, N = 0..4 codes; N is all zeros."""
    return np.eye(5, 4, dtype=np.float32)[codes]


def reference(folder):
    ref = np.load(folder / "reference.npz")
    return one_hot(ref["codes"]), ref


def assert_matches(ours, ref):
    ours = np.asarray(ours)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    err = np.abs(ours - ref).max()
    assert err <= 1e-4 * np.abs(ref).max(), f"max |ours - ref| {err:.3g}, max |ref| " \
        f"{np.abs(ref).max():.3g}"


@pytest.mark.parametrize("folder, name, head, key, is_trunk", CASES,
                         ids=[f"{c[0].name}-{c[1]}" for c in CASES])
def test_outputs_equal_baskerville(folder, name, head, key, is_trunk):
    x, ref = reference(folder)
    model, params, trunk = pretrained.import_baskerville(folder / name, folder / "params.json",
                                                         head=head)
    assert trunk is is_trunk
    assert_matches(model(x, training=False), ref[key])
    heads = [k for k in params["model"] if k.startswith("head")]
    assert len(heads) == 1  # the params keep the chosen head only


def test_declared_trunk_and_full(tmp_path):
    x, ref = reference(BASENJI)
    model, _, trunk = pretrained.import_baskerville(BASENJI / "trunk.h5", BASENJI / "params.json",
                                                    trunk=True)
    assert trunk and model.output_shape == (None, 112, 48)
    assert_matches(model(x, training=False), ref["trunk"])
    _, _, trunk = pretrained.import_baskerville(BASENJI / "model0.h5", BASENJI / "params.json",
                                                trunk=False)
    assert not trunk


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def rewrite_layout(src, dst):
    """`src` with other layer names (counters shifted by 7, norms named as batch-sync files of
    older TensorFlow name them) and attention biases one level up (`weight_names` `r_w_bias:0`
    at `<mha>/r_w_bias:0`)."""

    def rename(name):
        base, _, n = name.rpartition("_")
        base, n = (base, int(n)) if n.isdigit() else (name, 0)
        return f"{'sync_' * (base == 'batch_normalization')}{base}_{n + 7}"

    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for key, value in f.attrs.items():
            g.attrs[key] = value
        old, new = f["model_weights"], g.create_group("model_weights")
        names = [text(n) for n in old.attrs["layer_names"]]
        for name in names:
            group = new.create_group(rename(name))
            weight_names = []
            for w in map(text, old[name].attrs["weight_names"]):
                if "r_w_bias" in w or "r_r_bias" in w:
                    moved = w.rsplit("/", 1)[-1]
                else:
                    moved = w.replace(name, rename(name), 1)
                group[moved] = old[name][w][()]
                weight_names.append(moved)
            group.attrs["weight_names"] = np.array(weight_names, dtype="S")
        new.attrs["layer_names"] = np.array([rename(n) for n in names], dtype="S")


def test_names_and_bias_placement_do_not_matter(tmp_path):
    x, ref = reference(BORZOI)
    path = tmp_path / "renamed.h5"
    rewrite_layout(BORZOI / "model0.h5", path)
    with h5py.File(path) as f:
        assert "sync_batch_normalization_11" in f["model_weights"]
        assert "r_w_bias:0" in f["model_weights/multihead_attention_7"]
    model, _, _ = pretrained.import_baskerville(path, BORZOI / "params.json")
    assert_matches(model(x, training=False), ref["preds0"])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """borzoi_mini's mouse head imported by `seqnn import`, with a targets file."""
    tmp = tmp_path_factory.mktemp("imported")
    sheet = write_tiny_sheet(tmp / "targets.txt", [
        {"identifier": "m_plus", "file": "a.bw", "strand_pair": 1},
        {"identifier": "m_minus", "file": "b.bw", "strand_pair": 0},
        {"identifier": "m_dnase", "file": "c.bw", "scale": 0.5},
    ])
    out = tmp / "mouse.keras"
    assert cli.main(["import", "--params", str(BORZOI / "params.json"), "--weights",
                     str(BORZOI / "model1.h5"), "--targets", str(sheet), "--head", "1",
                     "-o", str(out)]) == 0
    return out


def test_imported_file_carries_params_targets_geometry(imported):
    model, meta = load_with_meta(imported)
    assert [t["identifier"] for t in meta["targets"]] == ["m_plus", "m_minus", "m_dnase"]
    assert [t["strand_pair"] for t in meta["targets"]] == [1, 0, 2]
    assert meta["targets"][2]["scale"] == 0.5
    # 4,096 bp pooled 32x, upsampled 4x: 8 bp bins; 512 bins, 16 cropped from each end
    assert meta["statistics"] == {"seq_length": 4096, "target_length": 480, "pool_width": 8,
                                  "crop_bp": 128, "num_targets": 3}
    body = meta["params"]["model"]
    assert body["head_mouse"]["units"] == 3 and "head_human" not in body


def test_load_model_gives_the_imported_numbers(imported):
    x, ref = reference(BORZOI)
    model = seqnn.load_model(imported)
    assert_matches(model(x, training=False), ref["preds1"])


def test_seqnn_predict_on_imported_model(imported, tmp_path):
    """`seqnn predict` over chromosomes that are the reference sequences: a region of each
    chromosome's 480 predicted bins (128 bp cropped each end), one window each."""
    _, ref = reference(BORZOI)
    codes = ref["codes"]
    fasta = tmp_path / "ref.fa"
    fasta.write_text("".join(f">s{i}\n" + "".join("ACGTN"[c] for c in row) + "\n"
                             for i, row in enumerate(codes)))
    bed = tmp_path / "regions.bed"
    bed.write_text("".join(f"s{i}\t128\t3968\n" for i in range(len(codes))))
    out = tmp_path / "pred"
    assert cli.main(["predict", str(imported), "--fasta", str(fasta), "--bed", str(bed),
                     "--overlap", "0", "-o", str(out), "--transformed"]) == 0
    ours = np.zeros_like(ref["preds1"])
    for t, track in enumerate(["m_plus", "m_minus", "m_dnase"]):
        with pyBigWig.open(str(out / f"{track}.bw")) as bw:
            for i in range(len(codes)):
                # bins of 8 bp from crop_bp 128 to 4,096 - 128
                ours[i, :, t] = bw.stats(f"s{i}", 128, 3968, type="mean", nBins=480)
    assert_matches(ours, ref["preds1"])


def test_generated_track_names_with_warning(tmp_path, caplog):
    out = tmp_path / "trunk.keras"
    with caplog.at_level(logging.WARNING, logger="seqnn"):
        summary = pretrained.import_model(BASENJI / "model0.h5", out,
                                          params=BASENJI / "params.json")
    assert "no targets file given; tracks named t0..t3" in caplog.text
    assert summary["trunk"] is False and summary["num_targets"] == 4
    _, meta = load_with_meta(out)
    assert [t["identifier"] for t in meta["targets"]] == ["t0", "t1", "t2", "t3"]
    assert meta["statistics"] == {"seq_length": 4096, "target_length": 112, "pool_width": 32,
                                  "crop_bp": 256, "num_targets": 4}


def test_trunk_file_imports_as_trunk_model(tmp_path):
    x, ref = reference(BORZOI)
    out = tmp_path / "trunk.keras"
    summary = pretrained.import_model(BORZOI / "trunk.h5", out, params=BORZOI / "params.json")
    assert summary["trunk"] is True and summary["num_targets"] == 48
    assert_matches(seqnn.load_model(out)(x, training=False), ref["trunk"])


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the file, the problem and the fix


def test_wrong_params_file():
    with pytest.raises(SeqnnError, match=r"model0.h5: does not fit .*basenji_mini/params.json: "
                       r"layer 'conv1d' \(the 1st convolution layer\) holds kernel \[15, 4, 32\], "
                       r"bias \[32\] where the params build kernel \[11, 4, 24\] \(the file has 6 "
                       r"convolution layers where the params build 12, .*, \.\.\.\); likely cause: "
                       r"a params file other than the one these weights were trained with"):
        pretrained.import_baskerville(BORZOI / "model0.h5", BASENJI / "params.json")


def test_trunk_file_given_as_full():
    with pytest.raises(SeqnnError, match=r"trunk.h5: holds a trunk only \(SeqNN.save\(trunk=True"
                       r"\)\), no head; import it as a trunk, or give the full model file"):
        pretrained.import_baskerville(BORZOI / "trunk.h5", BORZOI / "params.json", trunk=False)


def test_full_file_given_as_trunk():
    with pytest.raises(SeqnnError, match=r"model0.h5: holds a trunk and a head, not a trunk only"):
        pretrained.import_baskerville(BORZOI / "model0.h5", BORZOI / "params.json", trunk=True)


def test_wrong_head():
    with pytest.raises(SeqnnError, match=r"model1.h5: does not fit .*params.json head 0 "
                       r"\(head_human\) but its head is head 1 \(head_mouse\) of the params; "
                       r"import it with --head 1"):
        pretrained.import_baskerville(BORZOI / "model1.h5", BORZOI / "params.json", head=0)


def test_head_that_fits_no_head_of_the_params(tmp_path):
    params = json.loads((BORZOI / "params.json").read_text())
    params["model"]["head_mouse"]["units"] = 4
    with pytest.raises(SeqnnError, match=r"model1.h5: does not fit the params head 1 "
                       r"\(head_mouse\): layer 'dense_9' \(the 9th dense layer\) has kernel "
                       r"\[48, 3\] where the params build \[48, 4\]; likely cause: the file's "
                       r"head is not this one"):
        pretrained.import_baskerville(BORZOI / "model1.h5", params, head=1)


def test_missing_layer_is_counted():
    params = json.loads((BORZOI / "params.json").read_text())
    params["model"]["trunk"][2]["repeat"] = 3  # one transformer block more than the file
    with pytest.raises(SeqnnError, match=r"model0.h5: does not fit the params: layer 'dense_4' "
                       r"\(the 5th dense layer\) has kernel \[64, 64\] where the params build "
                       r"\[64, 128\] \(the file has 4 layer norm layers where the params build 6, "
                       r"2 attention layers where the params build 3, 9 dense layers where the "
                       r"params build 11\); likely cause: a params file other"):
        pretrained.import_baskerville(BORZOI / "model0.h5", params)


def test_head_out_of_range():
    with pytest.raises(SeqnnError, match=r"params.json: no head 2; its heads are 0 \(head_human"
                       r"\), 1 \(head_mouse\); pick one with --head"):
        pretrained.import_baskerville(BORZOI / "model0.h5", BORZOI / "params.json", head=2)


def test_hdf5_that_is_not_keras(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(SeqnnError, match=r"data.h5: an HDF5 file but not a Keras weights file "
                       r"\(no layer_names\); give the .h5 that Basenji or baskerville"):
        pretrained.import_baskerville(path, BORZOI / "params.json")


def test_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("not hdf5")
    with pytest.raises(SeqnnError, match=r"model.h5: not an HDF5 file"):
        pretrained.import_baskerville(path, BORZOI / "params.json")


def test_targets_row_count(tmp_path):
    sheet = write_tiny_sheet(tmp_path / "targets.txt",
                             [{"identifier": f"x{i}", "file": "x.bw"} for i in range(4)])
    with pytest.raises(SeqnnError, match=r"targets.txt: 4 rows but head 0 \(head_human\) "
                       r"predicts 5 tracks; give the targets file of this head"):
        pretrained.import_model(BORZOI / "model0.h5", tmp_path / "m.keras",
                                params=BORZOI / "params.json", targets=sheet)
    assert not (tmp_path / "m.keras").exists()


def test_unknown_and_undetectable_format(tmp_path):
    with pytest.raises(SeqnnError, match=r"import: unknown format 'onnx'; use one of "
                       r"baskerville, enformer"):
        pretrained.import_model(BORZOI / "model0.h5", tmp_path / "m.keras", format="onnx")
    with pytest.raises(SeqnnError, match=r"model.onnx: cannot tell its format; give --format"):
        pretrained.import_model(tmp_path / "model.onnx", tmp_path / "m.keras")
    (tmp_path / "enf").mkdir()
    (tmp_path / "enf" / "config.json").write_text("{}")
    assert pretrained.detect_format(tmp_path / "enf") == "enformer"
    assert pretrained.detect_format(BORZOI / "model0.h5") == "baskerville"


def test_baskerville_needs_params(tmp_path):
    with pytest.raises(SeqnnError, match=r"model0.h5: baskerville weights need their params "
                       r"file; give --params"):
        pretrained.import_model(BORZOI / "model0.h5", tmp_path / "m.keras")


def test_cli_error_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["import", "--params", str(BASENJI / "params.json"), "--weights",
                  str(BORZOI / "model0.h5"), "-o", str(tmp_path / "m.keras")])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(lines) == 1 and "does not fit" in lines[0] and "likely cause" in lines[0]


# ---------------------------------------------------------------------------------------------
# Defaults as Basenji's and baskerville's where a params file is silent


def final_output(model_activation, head):
    """A one-layer head's outputs and pre-activations `trunk output @ kernel` (the trunk: a
    Cropping1D of nothing, then the model's activation)."""
    import keras

    from seqnn.model.build import build_model

    body = {"seq_length": 8, "trunk": [{"name": "Cropping1D", "cropping": 0}], "head": head}
    if model_activation:
        body["activation"] = model_activation
    model = build_model({"model": body})
    dense = model.layers[-2]
    kernel = np.eye(4, 2, dtype=np.float32) * 3
    dense.set_weights([kernel, np.zeros(2, np.float32)])
    x = np.random.default_rng(0).normal(size=(2, 8, 4)).astype(np.float32)
    trunk = np.asarray(keras.Model(model.inputs, dense.input)(x))
    return np.asarray(model(x, training=False)), trunk @ kernel


def test_final_activation_defaults_as_basenji():
    from scipy.special import erf

    def exact_gelu(z):
        return 0.5 * z * (1 + erf(z / np.sqrt(2)))

    # no activation anywhere: linear (the trunk's default relu is not the head's)
    y, z = final_output(None, {"name": "final", "units": 2})
    np.testing.assert_allclose(y, z, rtol=1e-6, atol=1e-6)
    # the model's activation reaches a silent final, and its gelu is the exact one
    y, z = final_output("linear", {"name": "final", "units": 2})
    np.testing.assert_allclose(y, z, rtol=1e-6, atol=1e-6)
    y, z = final_output("gelu", {"name": "dense", "units": 2})
    np.testing.assert_allclose(y, exact_gelu(z), rtol=1e-5, atol=1e-6)
    y, z = final_output("gelu", {"name": "final", "units": 2, "activation": "softplus"})
    np.testing.assert_allclose(y, np.log1p(np.exp(z)), rtol=1e-5, atol=1e-6)
    y, z = final_output(None, {"name": "final", "units": 2, "activation": "exp"})
    np.testing.assert_allclose(y, np.exp(z), rtol=1e-5)
