"""The workflow config: schema defaults as the one source, derived defaults, cross-key checks,
and config/README.md's key tables generated from the schema."""

import copy

import pandas as pd
import pytest
import yaml
from helpers import REPO
from snakemake.utils import validate

from seqnn import SeqnnError
from seqnn.config import check, check_files, complete, readme_tables, reference_markdown

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
    return complete(config)


def leaves(schema, prefix=""):
    for key, node in schema["properties"].items():
        if node.get("type") == "object" and "properties" in node:
            yield from leaves(node, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", node


def test_every_key_has_a_meaning_and_a_default_unless_required():
    required = {"genome.fasta", "targets", "data.seq_length", "data.stride_train"}
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
        if "default" in node and name != "data.pool_width":  # MINIMAL sets pool_width
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
    (dict(interpret={"tracks": ["x", "b"]}),
     "interpret.tracks in my.yaml names x, not in t.tsv; use identifiers of the track sheet or "
     "null (all)"),
    (dict(data={"crop_bp": 8}),
     "my.yaml: data.crop_bp 8 is not divisible by data.pool_width 16; crop whole bins"),
    (dict(transfer={"mode": "linear"}),
     "transfer in my.yaml fine-tunes published weights: set model to {pretrained: {weights: "
     "PATH, params: PATH}}, or drop transfer"),
    (dict(model={"pretrained": {"weights": "m.keras"}}),
     "model.pretrained in my.yaml is fine-tuned per fold: add a transfer block (e.g. transfer: "
     "{mode: full})"),
    (dict(model={"pretrained": {"weights": "dir", "format": "enformer"}}, transfer={}),
     "model.pretrained.format enformer in my.yaml: import it first (seqnn import --weights DIR "
     "-o enformer.keras) and give the .keras as weights"),
    (dict(model={"pretrained": {"weights": "m.keras"}}, transfer={"mode": "adapter"}),
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
