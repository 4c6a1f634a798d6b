"""The workflow config beyond its JSON schema: derived defaults, cross-key checks, reference.

`workflow/schemas/config.schema.yaml` is the one source of every key's type, default and
meaning: Snakemake's `validate` fills the defaults, `complete` adds the defaults derived from
other keys, `check` raises one SeqnnError line for settings that contradict each other, and
`reference_markdown` writes config/README.md's key tables from the schema's descriptions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

from seqnn import SeqnnError

GPU_SECTIONS = ("evaluate", "predict", "interpret")  # their `gpu` defaults to train.gpu


def complete(config: dict) -> dict:
    """Fill the defaults that depend on other keys (after schema validation), in place."""
    config["data"].setdefault("stride_test", config["data"]["seq_length"])  # as Basenji
    for section in GPU_SECTIONS:
        config[section].setdefault("gpu", config["train"]["gpu"])
    model = config["model"]
    if isinstance(model, dict) and "pretrained" in model:  # a oneOf branch: no schema defaults
        for key in ("params", "format"):
            model["pretrained"].setdefault(key, None)
    return config


def check_data(data: dict, where: str = "config") -> None:
    """One line per inconsistent data setting (lengths, crop, strides)."""
    seq_length, pool, crop = data["seq_length"], data.get("pool_width", 32), data.get("crop_bp", 0)
    if seq_length % pool:
        raise SeqnnError(f"{where}: data.seq_length {seq_length} is not divisible by "
                         f"data.pool_width {pool}; pick a multiple of it")
    if 2 * crop >= seq_length:
        raise SeqnnError(f"{where}: data.crop_bp {crop} leaves nothing of data.seq_length "
                         f"{seq_length}; crop less than half of it")
    if crop % pool:
        raise SeqnnError(f"{where}: data.crop_bp {crop} is not divisible by data.pool_width "
                         f"{pool}; crop whole bins")
    brk = data.get("break_length")
    if brk and brk < seq_length:
        raise SeqnnError(f"{where}: data.break_length {brk} is shorter than data.seq_length "
                         f"{seq_length}, so every contig piece would be dropped; raise it or set "
                         "it to null")
    if data.get("folds", 8) in (1, 2):
        raise SeqnnError(f"{where}: data.folds must be 0 (train/valid/test split) or at least 3 "
                         "(test, valid and train folds)")


def _readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def check_files(config: dict, sheet, where: str, generated: Callable[[str], bool]) -> None:
    """Every input file the config and the sheet name exists, unless a rule makes it
    (`generated(path)`, e.g. URLs and the demo's files)."""
    genome = config["genome"]
    inputs = [("genome.fasta", genome["fasta"], f"fix genome.fasta in {where}")]
    inputs += [(f"track {i}", f, f"fix its file in {config['targets']}")
               for i, f in zip(sheet.identifier, sheet.file)]
    for what, path, fix in inputs:
        if not generated(path) and not _readable(path):
            rel = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
            raise SeqnnError(f"{path}: {what} file not found or unreadable{rel}; {fix}")
    optional = [(f"genome.{k}", genome[k]) for k in ("gaps", "blacklist", "unmappable")]
    optional += [("evaluate.tss", config["evaluate"]["tss"])]
    optional += [(f"interpret.{k}", config["interpret"][k]) for k in ("bed", "vcf")]
    for what, path in optional:
        if path and not generated(path) and not os.path.isfile(path):
            raise SeqnnError(f"{path}: {what} file not found; fix the path in {where} or set "
                             "it to null")


def check(config: dict, tracks: list[str], where: str) -> None:
    """Settings that contradict each other or the track sheet's identifiers `tracks`."""
    check_data(config["data"], where)
    predict = config["predict"]
    if predict["cross_fold"] and not config["data"]["folds"]:
        raise SeqnnError(f"predict.cross_fold needs K-fold models; set data.folds >= 3 in "
                         f"{where} or predict.cross_fold: false")
    if predict["regions_h5"] and not predict["bed"]:
        raise SeqnnError(f"predict.regions_h5 needs the regions: set predict.bed in {where}")
    pretrained = isinstance(config["model"], dict) and config["model"].get("pretrained")
    transfer = config["transfer"]
    if transfer is not None and not pretrained:
        raise SeqnnError(f"transfer in {where} fine-tunes published weights: set model to "
                         "{pretrained: {weights: PATH, params: PATH}}, or drop transfer")
    if pretrained and transfer is None:
        raise SeqnnError(f"model.pretrained in {where} is fine-tuned per fold: add a transfer "
                         "block (e.g. transfer: {mode: full})")
    if pretrained and pretrained.get("format") == "enformer":
        raise SeqnnError(f"model.pretrained.format enformer in {where}: import it first (seqnn "
                         "import --weights DIR -o enformer.keras) and give the .keras as weights")
    if transfer and transfer.get("mode") == "adapter" and transfer.get("adapter") is None:
        raise SeqnnError(f"transfer.mode adapter in {where} needs transfer.adapter (houlsby, "
                         "lora, lora_full, ia3, locon or houlsby_se)")
    for section in ("plots", "interpret"):
        unknown = [t for t in config[section]["tracks"] or [] if t not in tracks]
        if unknown:
            raise SeqnnError(f"{section}.tracks in {where} names {', '.join(unknown)}, not in "
                             f"{config['targets']}; use identifiers of the track sheet or null "
                             "(all)")


# ---------------------------------------------------------------------------------------------
# Reference tables (config/README.md)


def _shown(node: dict) -> str:
    if "x-default" in node:
        return f"`{node['x-default']}`"
    if "default" not in node:
        return "—"
    value = node["default"]
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def reference_markdown(schema: dict, section: str | None = None) -> str:
    """Markdown table (key, default, meaning) of a config section's keys, from `schema`:
    `section` None gives the top-level keys that are not sections themselves."""
    props = schema["properties"]
    if section is None:
        props = {k: v for k, v in props.items() if v.get("type") != "object"}
    else:
        props = props[section]["properties"]
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, node in props.items():
        meaning = " ".join(node.get("description", "").split())
        rows.append(f"| `{key}` | {_shown(node)} | {meaning} |")
    return "\n".join(rows)


def sheet_markdown(schema: dict) -> str:
    """Markdown table (column, meaning) of the track sheet's columns, from its row schema."""
    required = set(schema.get("required", []))
    rows = ["| column | meaning |", "|---|---|"]
    for key, node in schema["properties"].items():
        meaning = " ".join(node.get("description", "").split())
        rows.append(f"| `{key}` | {'' if key in required else 'optional: '}{meaning} |")
    return "\n".join(rows)


def readme_tables(text: str, schema: dict, sheet_schema: dict) -> str:
    """`text` with every `<!-- BEGIN KEYS section -->` ... `<!-- END KEYS -->` block (section
    `top`, `sheet` or a config section) regenerated from the schemas."""

    def table(match):
        section = match.group(1)
        body = (sheet_markdown(sheet_schema) if section == "sheet" else
                reference_markdown(schema, None if section == "top" else section))
        return f"{match.group(0).split(chr(10))[0]}\n{body}\n<!-- END KEYS -->"

    return re.sub(r"<!-- BEGIN KEYS (\w+)[^\n]*-->\n.*?<!-- END KEYS -->", table, text,
                  flags=re.S)
