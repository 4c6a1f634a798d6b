"""The workflow config: schema defaults as the one source, derived defaults, cross-key checks,
and config/README.md's key tables generated from the schema."""

import copy

import pandas as pd
import pytest
import yaml
from helpers import REPO
from snakemake.utils import validate

from seqnn import SeqnnError
from seqnn.config import (
    check,
    check_files,
    complete,
    pretrained,
    readme_tables,
    reference_markdown,
    selections,
)
from seqnn.data.selection import track_indices
from seqnn.model.published import pretrained_geometry

SCHEMA_FILE = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_FILE.read_text())
SHEET_SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "targets.schema.yaml").read_text())
MINIMAL = {"genome": {"fasta": "g.fa"}, "targets": "t.tsv",
           "data": {"seq_length": 2048, "stride_train": 1024, "pool_width": 16}}


def validated(**sections):
    config = copy.deepcopy(MINIMAL)
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    validate(config, str(SCHEMA_FILE))
    geometry = {"seq_length": 2048, "pool_width": 16, "crop_bp": 0, "tracks": None}
    return complete(config, "my.yaml", geometry if pretrained(config) else None)


def leaves(schema, prefix=""):
    for key, node in schema["properties"].items():
        if node.get("type") == "object" and "properties" in node:
            yield from leaves(node, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", node


def test_every_key_has_a_meaning_and_a_default_unless_required():
    required = {"genome.fasta", "targets"}  # data.seq_length, stride_train: see complete
    for name, node in leaves(SCHEMA):
        assert node.get("description"), f"{name}: no description in the schema"
        has_default = "default" in node or "x-default" in node
        assert has_default != (name in required), f"{name}: default and required disagree"
    for name, node in leaves(SHEET_SCHEMA):
        assert node.get("description"), f"sheet column {name}: no description"


def test_schema_fills_every_default_and_complete_derives_the_rest():
    config = validated(train={"gpu": True}, predict={"gpu": False})
    assert config["predict"]["shards"] == 4 and config["evaluate"]["shifts"] == [-1, 0, 1]
    assert config["interpret"]["ism_width"] == 100 and config["bam"]["min_mapq"] == 0
    assert config["data"]["stride_test"] == 2048  # = seq_length, as Basenji
    # gpu follows train.gpu unless the section sets it
    assert config["evaluate"]["gpu"] is True and config["interpret"]["gpu"] is True
    assert config["predict"]["gpu"] is False
    plain = validated()
    for name, node in leaves(SCHEMA):  # every leaf left out takes the schema's default
        section, _, key = name.rpartition(".")
        if "default" in node:
            assert (plain[section] if section else plain)[key] == node["default"], name


@pytest.mark.parametrize(("sections", "message"), [
    (dict(predict={"cross_fold": True}, data={"folds": 0}),
     "predict.cross_fold needs K-fold models; set data.folds >= 3 in my.yaml or "
     "predict.cross_fold: false"),
    (dict(predict={"regions_h5": True}),
     "predict.regions_h5 needs the regions: set predict.bed in my.yaml"),
    (dict(plots={"tracks": ["a", "zz"]}),
     "plots.tracks in my.yaml names zz, not in t.tsv; use identifiers of the track sheet or "
     "null (all)"),
    (dict(data={"crop_bp": 8}),
     "my.yaml: data.crop_bp 8 is not divisible by data.pool_width 16; crop whole bins"),
    (dict(transfer={"mode": "linear"}),
     "transfer in my.yaml fine-tunes published weights: set model to {pretrained: {weights: "
     "PATH, params: PATH, targets: PATH}}, or drop transfer"),
    (dict(model={"pretrained": {"weights": "m.h5", "targets": "t.txt"}},
          transfer={"mode": "adapter"}),
     "transfer.mode adapter in my.yaml needs transfer.adapter (houlsby, lora, lora_full, ia3, "
     "locon or houlsby_se)"),
])
def test_cross_key_checks(sections, message):
    config = validated(**sections)
    with pytest.raises(SeqnnError) as e:
        check(config, ["a", "b"], "my.yaml")
    assert str(e.value) == message
    check(validated(), ["a", "b"], "my.yaml")  # the same config without the contradiction


def test_check_files_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.fa").write_text(">c\nACGT\n")
    (tmp_path / "a.bw").write_bytes(b"")
    sheet = pd.DataFrame({"identifier": ["a", "b"], "file": ["a.bw", "b.bw"]})
    with pytest.raises(SeqnnError) as e:
        check_files(validated(), sheet, "my.yaml", generated=lambda p: False)
    assert str(e.value) == (f"b.bw: track b file not found or unreadable (relative to "
                            f"{tmp_path}); fix its file in t.tsv")
    check_files(validated(), sheet, "my.yaml", generated=lambda p: p == "b.bw")
    config = validated(interpret={"vcf": "v.vcf"})
    with pytest.raises(SeqnnError, match="^v.vcf: interpret.vcf file not found; fix the path in "
                                         "my.yaml or set it to null$"):
        check_files(config, sheet.iloc[:1], "my.yaml", generated=lambda p: False)


def test_reference_table_shows_defaults_and_meanings():
    table = reference_markdown(SCHEMA, "predict").splitlines()
    assert table[0] == "| key | default | meaning |"
    assert "| `shards` | `4` | " in table[3] and "| `stitch` | `centre` | " in table[5]
    rows = {row.split(" | ")[0][3:-1]: row for row in table[2:]}
    assert rows["gpu"].startswith("| `gpu` | `= train.gpu` | ask the scheduler")
    assert " | `[0]` | " in rows["shifts"]
    top = reference_markdown(SCHEMA)
    assert "| `targets` | — |" in top and "`genome`" not in top


def test_config_readme_tables_are_generated_from_the_schema():
    readme = (REPO / "config" / "README.md").read_text()
    assert readme.count("<!-- BEGIN KEYS") == 11
    assert readme_tables(readme, SCHEMA, SHEET_SCHEMA) == readme, (
        "config/README.md's key tables differ from workflow/schemas; regenerate them: "
        "python -c \"import yaml, pathlib; from seqnn.config import readme_tables; "
        "p = pathlib.Path('config/README.md'); s = pathlib.Path('workflow/schemas'); "
        "p.write_text(readme_tables(p.read_text(), "
        "yaml.safe_load((s / 'config.schema.yaml').read_text()), "
        "yaml.safe_load((s / 'targets.schema.yaml').read_text())))\"")


SHEET = pd.DataFrame({"identifier": ["a", "b"], "description": ["DNASE:x", "CAGE:y"],
                      "strand_pair": [0, 1]})


def test_data_geometry_defaults_and_the_missing_required_keys():
    config = validated()
    assert config["data"]["pool_width"] == 16 and config["data"]["crop_bp"] == 0
    config = copy.deepcopy(MINIMAL)
    del config["data"]["stride_train"]
    validate(config, str(SCHEMA_FILE))
    with pytest.raises(SeqnnError, match="^data.stride_train is missing in my.yaml; set it"):
        complete(config, "my.yaml")


MODEL = {"seq_length": 4096, "pool_width": 32, "crop_bp": 256, "target_length": 112,
         "tracks": 4, "format": "baskerville"}
PRETRAINED = {"model": {"pretrained": {"weights": "m.h5", "targets": "m.txt"}}}


def pretrained_config(**data):
    config = copy.deepcopy({**MINIMAL, **PRETRAINED})
    config["data"] = {"folds": 0, **data}
    validate(config, str(SCHEMA_FILE))
    return config


def test_pretrained_geometry_fills_the_data_and_contradictions_fail():
    config = complete(pretrained_config(), "my.yaml", MODEL)
    assert {k: config["data"][k] for k in ("seq_length", "pool_width", "crop_bp")} == {
        "seq_length": 4096, "pool_width": 32, "crop_bp": 256}
    assert config["data"]["stride_train"] == 3584 == config["data"]["stride_test"] - 512
    complete(pretrained_config(pool_width=32), "my.yaml", MODEL)  # the model's value: fine
    with pytest.raises(SeqnnError) as e:
        complete(pretrained_config(crop_bp=0), "my.yaml", MODEL)
    assert str(e.value) == ("data.crop_bp 0 in my.yaml contradicts the pretrained model's 256 "
                            "(m.h5); drop data.crop_bp (the model's is used) or fix it")


def model_sheet():
    return pd.DataFrame({"identifier": [f"m{i}" for i in range(4)], "strand_pair": [0, 1, 3, 2],
                         "description": ["DNASE:x", "CHIP:y", "CAGE:z", "CAGE:z"]})


def test_selections_resolve_each_step_and_map_the_sheet_rows():
    config = complete(pretrained_config(), "my.yaml", MODEL)
    config["predict"]["tracks"], config["interpret"]["tracks"] = ["m3"], ["CHIP"]
    config["evaluate"]["tracks"] = ["m1", 0]
    picked = selections(config, SHEET, model_sheet(), "my.yaml", track_indices, MODEL)
    assert picked == {"predict": [3, 2], "interpret": [1], "evaluate": [1, 0]}
    config["evaluate"]["tracks"] = None  # pretrained: the sheet's identifiers, absent here
    with pytest.raises(SeqnnError, match="^evaluate.tracks in my.yaml: track 'a' is neither"):
        selections(config, SHEET, model_sheet(), "my.yaml", track_indices, MODEL)
    config["evaluate"]["tracks"] = ["CAGE"]  # two tracks for the two rows: fine
    assert selections(config, SHEET, model_sheet(), "my.yaml", track_indices,
                      MODEL)["evaluate"] == [2, 3]
    config["evaluate"]["tracks"] = ["m2"]  # rc brings m3: two for two rows, as above
    assert selections(config, SHEET, model_sheet(), "my.yaml", track_indices,
                      MODEL)["evaluate"] == [2, 3]
    config["evaluate"]["tracks"] = ["m0"]
    with pytest.raises(SeqnnError) as e:
        selections(config, SHEET, model_sheet(), "my.yaml", track_indices, MODEL)
    assert str(e.value) == ("evaluate.tracks in my.yaml picks 1 tracks of m.txt for the 2 rows "
                            "of t.tsv; name one model track per row, in order (with evaluate.rc, "
                            "stranded tracks bring their partners)")
    with pytest.raises(SeqnnError, match="^m.txt: 3 rows but head 0 of m.h5 predicts 4 tracks"):
        selections(config, SHEET, model_sheet()[:3], "my.yaml", track_indices, MODEL)


def test_trained_models_select_from_the_data_sheet():
    config = validated(interpret={"tracks": ["zz"]})
    with pytest.raises(SeqnnError, match="^interpret.tracks in my.yaml: track 'zz' is neither an "
                                         "identifier nor an index of t.tsv"):
        selections(config, SHEET, SHEET, "my.yaml", track_indices)
    config = validated()
    assert selections(config, SHEET, SHEET, "my.yaml", track_indices) == {
        "predict": [0, 1], "interpret": [0, 1], "evaluate": None}


def test_pretrained_files_are_checked_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = {"weights": "m.h5", "params": None, "targets": "m.txt", "format": None, "head": 0}
    with pytest.raises(SeqnnError, match="^m.h5: model.pretrained.weights not found; fix the "
                                         "path in my.yaml"):
        pretrained_geometry(block, "my.yaml")
    (tmp_path / "m.h5").write_bytes(b"")
    with pytest.raises(SeqnnError, match="^model.pretrained.format 'tf' in my.yaml is not a "
                                         "known format; use baskerville or enformer"):
        pretrained_geometry({**block, "format": "tf"}, "my.yaml")
    with pytest.raises(SeqnnError, match="^model.pretrained.params: baskerville weights need"):
        pretrained_geometry(block, "my.yaml")
