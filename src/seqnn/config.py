"""The workflow config beyond its JSON schema: derived defaults, cross-key checks, reference.

`workflow/schemas/config.schema.yaml` is the one source of every key's type, default and
meaning: `check_schema` turns the first violation of a config (or a sheet's row) into one line,
Snakemake's `validate` fills the defaults, `complete` adds the defaults derived from other keys,
`check` raises one SeqnnError line for settings that contradict each other,
`resolve_paths` finds the config's relative input paths (working directory, then the config
file's folder, then the workflow's), and `reference_markdown` writes config/README.md's key
tables from the schema's descriptions.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable

import jsonschema

from seqnn import SeqnnError
from seqnn.io import names_params_file

GPU_SECTIONS = ("evaluate", "predict", "interpret")  # their `gpu` defaults to train.gpu
GEOMETRY = ("seq_length", "pool_width", "crop_bp")
DATA_DEFAULTS = {"pool_width": 32, "crop_bp": 0}


_TYPES = {"integer": "an integer", "number": "a number", "string": "a string",
          "boolean": "true or false", "array": "a list", "object": "a mapping", "null": "null"}


def _shown_value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected(schema: dict) -> str:
    """What a schema node accepts, in words: `an integer >= 1 or null`, `one of a, b`."""
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        return " or ".join(_expected(b) for b in branches)
    if "const" in schema:
        return _shown_value(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join("null" if v is None else _shown_value(v)
                                     for v in schema["enum"])
    types = schema.get("type", [])
    words = [_TYPES[t] for t in ([types] if isinstance(types, str) else types)]
    limits = [f"{op} {schema[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                    ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    if "pattern" in schema:
        limits.append(f"matching {schema['pattern']}")
    if "minItems" in schema:
        limits.append(f"with at least {schema['minItems']} item(s)")
    if "items" in schema:
        limits.append(f"of {_expected(schema['items'])}")
    if schema.get("required"):
        limits.append(f"with key(s) {', '.join(schema['required'])}")
    if words and limits:
        words[0] += " " + " ".join(limits)
    return " or ".join(words) or "a valid value"


def _key_path(parts) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def schema_message(error: jsonschema.ValidationError, where: str, prefix: str = "") -> str:
    """One line for a schema violation: the file `where`, the key path (after `prefix`, e.g. a
    sheet's row), the problem and the valid keys or values."""
    while error.parent is not None and error.parent.validator in ("oneOf", "anyOf"):
        error = error.parent  # describe every alternative, not one branch
    path = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        valid = list(error.schema.get("properties", {}))
        key = next(k for k in error.instance if k not in valid)
        near = difflib.get_close_matches(key, valid, 1, 0.6)
        hint = f"did you mean {near[0]}? " if near else ""
        return (f"{where}: unknown key {prefix}{_key_path([*error.absolute_path, key])}; {hint}"
                f"valid keys{' of ' + path if path else ''}: {', '.join(valid)}")
    if error.validator == "required":
        key = next(k for k in error.validator_value if k not in error.instance)
        return f"{where}: {prefix}{path or 'the config'} lacks the required key {key}; add it"
    return (f"{where}: {prefix}{path} is {json.dumps(error.instance)[:60]}; give "
            f"{_expected(error.schema)}")


def check_schema(data: dict, schema: dict, where: str, prefix: str = "") -> None:
    """Raise `schema_message` of the most relevant violation of `schema` by `data`."""
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        raise SeqnnError(schema_message(error, where, prefix))


def check_sheet_schema(sheet, schema: dict, where: str) -> None:
    """`check_schema` of each row of the track sheet (a DataFrame; empty cells left out)."""
    for i, row in enumerate(sheet.to_dict("records")):
        row = {k: v for k, v in row.items() if v is not None and v == v}  # NaN != NaN
        check_schema(row, schema, where, f"row {i} ({row.get('identifier')}) column ")


def pretrained(config: dict) -> dict | None:
    """The `model.pretrained` block, or None when the workflow trains its models."""
    model = config["model"]
    return model["pretrained"] if isinstance(model, dict) and "pretrained" in model else None


def complete(config: dict, where: str = "the config", model: dict | None = None) -> dict:
    """Fill the defaults that depend on other keys (after schema validation), in place: the
    data geometry is the pretrained model's `model` (`seqnn.model.published.pretrained_geometry`;
    a contradicting value is an error), else 32 bp bins without crop."""
    data, block = config["data"], pretrained(config)
    if block is not None:
        for key in GEOMETRY:
            if data.setdefault(key, model[key]) != model[key]:
                raise SeqnnError(f"data.{key} {data[key]} in {where} contradicts the pretrained "
                                 f"model's {model[key]} ({block['weights']}); drop data.{key} "
                                 "(the model's is used) or fix it")
        data.setdefault("stride_train", data["seq_length"] - 2 * data["crop_bp"])
    for key in ("seq_length", "stride_train"):
        if key not in data:
            raise SeqnnError(f"data.{key} is missing in {where}; set it (bp) or use "
                             "model.pretrained, whose geometry fills it")
    for key, value in DATA_DEFAULTS.items():
        data.setdefault(key, value)
    data.setdefault("stride_test", data["seq_length"])  # as Basenji
    for section in GPU_SECTIONS:
        config[section].setdefault("gpu", config["train"]["gpu"])
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


# ---------------------------------------------------------------------------------------------
# Relative input paths: the working directory first, then the config file's folder, then the
# workflow's folder (where the embedded demo's config/ lives)

# (section, key) of every input path of the config besides `model` (see `_path_slots`)
PATH_KEYS = (("genome", "fasta"), ("genome", "gaps"), ("genome", "blacklist"),
             ("genome", "unmappable"), (None, "targets"), ("evaluate", "tss"), ("predict", "bed"),
             ("predict", "tss_bed"), ("predict", "embed_bed"), ("interpret", "bed"),
             ("interpret", "vcf"))


def resolve_path(path: str | None, folders, keep: Callable[[str], bool] | None = None
                 ) -> tuple[str | None, str | None]:
    """Where the relative input `path` lies: `(path, None)` when it exists in the working
    directory, is absolute, a URL, empty, or `keep(path)` (a file a rule makes); else
    `(FOLDER/path, LABEL)` for the first `(LABEL, FOLDER)` of `folders` that holds it; else
    `(path, None)` as given, so that the missing-file checks name it as the user wrote it."""
    if (not isinstance(path, str) or not path or os.path.isabs(path) or "://" in path
            or (keep and keep(path)) or os.path.exists(path)):
        return path, None
    for label, folder in folders:
        candidate = os.path.normpath(os.path.join(folder, path))
        if os.path.exists(candidate):
            return candidate, label
    return path, None


def path_folders(configfiles, workflow_dir: str | None = None, sheet: str | None = None
                 ) -> list[tuple[str, str]]:
    """The `(label, folder)` pairs where a relative input path missing in the working directory
    is looked for, in order: each config file's folder, the track sheet's (for its `file`
    column), then the workflow's (`workflow_dir`, where it is a local folder)."""
    folders = [("the config file's folder", os.path.dirname(os.path.abspath(str(f))))
               for f in configfiles]
    if sheet is not None:
        folders.append(("the track sheet's folder", os.path.dirname(os.path.abspath(sheet))))
    if workflow_dir is not None and os.path.isdir(workflow_dir):
        folders.append(("the workflow's folder", os.path.normpath(os.path.abspath(workflow_dir))))
    unique = {}
    for label, folder in folders:
        unique.setdefault(folder, label)
    return [(label, folder) for folder, label in unique.items()]


def _path_slots(config: dict):
    """(key name, mapping, key) of every input path of `config` (the schema's defaults filled)."""
    for section, key in PATH_KEYS:
        block = config if section is None else config.get(section) or {}
        if isinstance(block.get(key), str):
            yield (f"{section}.{key}" if section else key), block, key
    model = config.get("model")
    if names_params_file(model):
        yield "model", config, "model"
    elif isinstance(model, dict) and names_params_file(model.get("preset")):
        yield "model.preset", model, "preset"
    elif isinstance(model, dict) and isinstance(model.get("pretrained"), dict):
        block = model["pretrained"]
        for key in ("weights", "params", "targets"):
            if isinstance(block.get(key), str):
                yield f"model.pretrained.{key}", block, key


def _found_line(what: str, given: str, path: str, label: str) -> str:
    return (f"{what} {given}: not in the working directory ({os.getcwd()}); using {path} "
            f"from {label}")


def resolve_paths(config: dict, folders, keep: Callable[[str], bool] | None = None
                  ) -> list[str]:
    """`resolve_path` of every relative input path of `config`, in place (`folders`: the
    config files' folders, then the workflow's, as `(label, folder)`); returns one log line per
    path taken from one of `folders`."""
    lines = []
    for what, block, key in _path_slots(config):
        path, label = resolve_path(block[key], folders, keep)
        if label is not None:
            lines.append(_found_line(what, block[key], path, label))
            block[key] = path
    return lines


def resolve_sheet_files(sheet, where: str, folders, keep: Callable[[str], bool] | None = None
                        ) -> list[str]:
    """`resolve_path` of the track sheet's `file` column, in place (`sheet`: a DataFrame read
    from `where`; `folders` as for `resolve_paths`, the sheet's own folder after the config
    files'); returns one log line per file taken from one of `folders`."""
    lines, files = [], []
    for identifier, given in zip(sheet.identifier, sheet.file):
        path, label = resolve_path(given, folders, keep)
        if label is not None:
            lines.append(_found_line(f"{where}: track {identifier} file", given, path, label))
        files.append(path)
    sheet["file"] = files
    return lines


def check(config: dict, tracks: list[str], where: str) -> None:
    """Settings that contradict each other or the track sheet's identifiers `tracks`."""
    check_data(config["data"], where)
    width, seq_length = config["interpret"]["ism_width"], config["data"]["seq_length"]
    if width > seq_length:
        raise SeqnnError(f"{where}: interpret.ism_width {width} exceeds data.seq_length "
                         f"{seq_length}; mutate at most the whole window")
    predict = config["predict"]
    if predict["cross_fold"] and not config["data"]["folds"]:
        raise SeqnnError(f"predict.cross_fold needs K-fold models; set data.folds >= 3 in "
                         f"{where} or predict.cross_fold: false")
    if predict["regions_h5"] and not predict["bed"]:
        raise SeqnnError(f"predict.regions_h5 needs the regions: set predict.bed in {where}")
    unknown = [t for t in config["plots"]["tracks"] or [] if t not in tracks]
    if unknown:
        raise SeqnnError(f"plots.tracks in {where} names {', '.join(unknown)}, not in "
                         f"{config['targets']}; use identifiers of the track sheet or null (all)")
    transfer = config["transfer"]
    if transfer is not None and pretrained(config) is None:
        raise SeqnnError(f"transfer in {where} fine-tunes published weights: set model to "
                         "{pretrained: {weights: PATH, params: PATH, targets: PATH}}, or drop "
                         "transfer")
    if transfer and transfer.get("mode") == "adapter" and transfer.get("adapter") is None:
        raise SeqnnError(f"transfer.mode adapter in {where} needs transfer.adapter (houlsby, "
                         "lora, lora_full, ia3, locon or houlsby_se)")


def selections(config: dict, sheet, model_sheet, where: str, resolve: Callable,
               model: dict | None = None) -> dict:
    """The tracks each step uses, as row indices of the model's sheet (`model_sheet`: the
    pretrained model's, whose geometry and track count are `model`, else the data's `sheet`):
    `predict` (with its strand partners under rc), `interpret` and `evaluate` (one per row of
    `sheet`, or None: all). `resolve` is `seqnn.data.selection.track_indices`."""
    block = pretrained(config) if config["transfer"] is None else None  # fine-tuned: the sheet's
    source = block["targets"] if block else config["targets"]
    if block is not None:
        want = model["tracks"]
        if want is not None and want != len(model_sheet):
            raise SeqnnError(f"{source}: {len(model_sheet)} rows but head {block['head']} of "
                             f"{block['weights']} predicts {want} tracks; give the targets file "
                             "of this head (model.pretrained.targets)")

    def pick(key, tracks, partners=False):
        return resolve(model_sheet, tracks, partners=partners, sheet=source,
                       where=f"{key} in {where}")

    evaluate = config["evaluate"]
    chosen = evaluate["tracks"]
    if chosen is None and block is not None:
        chosen = list(sheet.identifier)
    picked = None
    if chosen is not None:
        picked = pick("evaluate.tracks", chosen, evaluate["rc"])
        if len(picked) != len(sheet):
            raise SeqnnError(f"evaluate.tracks in {where} picks {len(picked)} tracks of {source} "
                             f"for the {len(sheet)} rows of {config['targets']}; name one model "
                             "track per row, in order (with evaluate.rc, stranded tracks bring "
                             "their partners)")
    return {"predict": pick("predict.tracks", config["predict"]["tracks"],
                            config["predict"]["rc"]),
            "interpret": pick("interpret.tracks", config["interpret"]["tracks"]),
            "evaluate": picked}


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
