"""Params files' `model` block without Keras: validation, output length, receptive field.

A params file has a `train` and a `model` block (Basenji's params.json); functions here take the
whole params or the `model` block alone. `parse_params` resolves every block against
`seqnn.model.spec.BLOCKS`; lengths and fields come from the blocks' `seqnn.model.geometry`.
"""

import json
import logging
import math
import re
from dataclasses import dataclass, replace

from seqnn import SeqnnError
from seqnn.model.keys import ACTIVATIONS, INHERITED, KEY_DOCS, KINDS, REQUIRED, filled_block
from seqnn.model.spec import BLOCKS, reference_markdown, resolve

log = logging.getLogger("seqnn")

# Model-level keys besides the block globals in keys.INHERITED: key -> (default, meaning).
MODEL_KEYS = {
    "seq_length": (REQUIRED, "input length in bp"),
    "seq_depth": (4, "input channels (4: one-hot ACGT)"),
    "augment_rc": (False, "reverse-complement a random half of training sequences"),
    "augment_shift": (0, "shift training sequences by up to this many bp, padding with N"),
    "trunk": (REQUIRED, "list of blocks, shared by all heads"),
    "head": (None, "a block, a list of blocks, or a list of such lists (one head each)"),
    "head_<name>": (None, "one more head on the trunk; heads are ordered by natural key sort"),
    "batch_norm": (False, "legacy Basenji switch: true means `norm_type: batch`"),
    "target_length": (None, "ignored (a Basenji data setting)"),
    "ensemble_rc": (None, "ignored (a prediction setting)"),
    "ensemble_shifts": (None, "ignored (a prediction setting)"),
    "verbose": (None, "ignored"),
    "adapter": (None, "Houlsby adapters a fine-tuned model keeps: `houlsby` or `houlsby_se` "
                "(written by `seqnn train` with a transfer block, as baskerville)"),
    "adapter_latent": (8, "their bottleneck width"),
    "conv_select": (4, "houlsby_se: the last this many trunk convolutions have squeeze-excite "
                    "adapters"),
    "se_rank": (4, "houlsby_se: the squeeze-excite bottleneck width"),
}

RECORDED_ADAPTERS = ("houlsby", "houlsby_se")

# The `transfer` block (baskerville's hound_transfer.py): key -> (default, meaning).
TRANSFER_MODES = ("full", "linear", "adapter")
ADAPTERS = ("houlsby", "lora", "lora_full", "ia3", "locon", "houlsby_se")
TRANSFER_KEYS = {
    "mode": ("full", "`full` (train everything), `linear` (trunk frozen, batch-norm statistics "
             "included; the head trains) or `adapter` (only adapters, the head and, for Houlsby "
             "adapters, the layer norms train)"),
    "adapter": (None, "mode adapter: `houlsby`, `lora`, `lora_full`, `ia3`, `locon` or "
                "`houlsby_se`"),
    "adapter_latent": (8, "Houlsby bottleneck width; LoRA rank (lora, lora_full, and locon's "
                       "attention)"),
    "conv_select": (4, "locon, houlsby_se: adapt the last this many standard convolutions of the "
                    "trunk (locon with all of them trains the first one whole instead)"),
    "conv_latent": (4, "locon rank; houlsby_se squeeze-excite bottleneck"),
    "lora_alpha": (16, "LoRA updates are scaled by lora_alpha / adapter_latent"),
    "locon_alpha": (1, "LoCon updates are scaled by locon_alpha / conv_latent"),
}
TRANSFER_DOC = """\
A `transfer` block beside `train` and `model` fine-tunes pretrained weights
(`seqnn train PARAMS DATA --restore WEIGHTS [--trunk]`, or the workflow's `model.pretrained`),
with the keys and defaults of baskerville's hound_transfer.py. What trains: `full` everything;
`linear` the head; `adapter` the adapters and the head, plus the trunk's layer norms for
`houlsby` and `houlsby_se`. Where adapters go: `houlsby` a bottleneck before both residual adds
of every transformer block; `lora` low-rank updates of the attention's query and value
projections (`lora_full`: all four projections); `ia3` per-channel scales of the attention's
keys and values and of the feed-forward hidden units; `locon` LoRA on the attention plus a
low-rank convolution beside the last `conv_select` standard trunk convolutions; `houlsby_se`
Houlsby adapters plus a squeeze-excite adapter after the last `conv_select` convolutions. After
training, LoRA, IA3 and LoCon are merged into the weights (the saved model has the original
architecture and params); Houlsby adapters stay, recorded in the saved params' model block
(`adapter`, `adapter_latent`, `conv_select`, `se_rank`). `seqnn summary PARAMS --json` counts
the parameters as fine-tuning trains them; they equal baskerville's (tests/test_transfer.py).
Two choices differ from baskerville's code, which hard-codes them: `locon`'s attention LoRA and
`houlsby_se`'s Houlsby adapters use `adapter_latent` and `lora_alpha` (baskerville: 8 and 16,
the defaults), and `ia3` scales the feed-forward hidden units of any width (baskerville picks
Dense layers of 1,536 inputs: those units in its 768-wide borzoilite, other layers in Borzoi)."""
_ADAPTER_KEYS = ("adapter", "adapter_latent", "conv_select", "conv_latent", "lora_alpha",
                 "locon_alpha")



_GLOBAL_DOCS = {
    "activation": "activation, also applied once to the trunk output (relu if not given)",
}



@dataclass(frozen=True)
class Spec:
    """A validated model block: globals, resolved trunk blocks and heads."""

    seq_length: int
    seq_depth: int
    augment_rc: bool
    augment_shift: int
    activation: str
    trunk: list
    heads: dict
    adapter: dict | None = None



def model_params(params: dict) -> dict:
    """The `model` block of `params`, or `params` itself when it is a bare model block."""
    return params["model"] if "model" in params else params



def _natural_key(text):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]



def head_lists(mp):
    """Heads as `{name: [block, ...]}` from `head` and `head_<name>` keys."""
    heads = {}
    for key in sorted((k for k in mp if k.startswith("head")), key=_natural_key):
        value = mp[key]
        if isinstance(value, dict):
            heads[key] = [value]
        elif isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            heads.update({f"{key}{i}": blocks for i, blocks in enumerate(value)})
        elif isinstance(value, list) and value:
            heads[key] = value
        else:
            raise SeqnnError(f"model.{key}: expected a block, a list of blocks or a list of heads")
    return heads



def parse_params(params: dict) -> Spec:
    """Validate params (whole file or model block) and resolve every block's keys."""
    mp = model_params(params)
    unknown = [
        k for k in mp if k not in MODEL_KEYS and k not in INHERITED and not k.startswith("head_")
    ]
    if unknown:
        valid = ", ".join([*MODEL_KEYS, *INHERITED])
        raise SeqnnError(f"model: unknown key {unknown[0]!r}; valid keys: {valid}")
    for key in ("seq_length", "trunk"):
        if key not in mp:
            raise SeqnnError(f"model: missing required key {key!r}")
    if not isinstance(mp["trunk"], list):
        raise SeqnnError("model.trunk: expected a list of blocks")
    for key, value in mp.items():
        if key in KINDS and value is not None and not KINDS[key].accepts(value):
            raise SeqnnError(f"model: {key} {json.dumps(value)} must be {KINDS[key]}")
    model_globals = {k: mp.get(k) for k in INHERITED}
    if model_globals["norm_type"] is None and mp.get("batch_norm"):
        model_globals["norm_type"] = "batch"
    heads = head_lists(mp)
    if not heads:
        raise SeqnnError('model: no head; add e.g. "head": {"name": "final", "units": N}')
    shift = mp.get("augment_shift", 0)
    if isinstance(shift, list):  # Basenji's old default [0]
        shift = max((abs(s) for s in shift), default=0)
    spec = Spec(
        seq_length=int(mp["seq_length"]),
        seq_depth=int(mp.get("seq_depth", 4)),
        augment_rc=bool(mp.get("augment_rc", False)),
        augment_shift=int(shift),
        activation=mp.get("activation") or "relu",
        trunk=[resolve(b, model_globals, f"model.trunk[{i}]") for i, b in enumerate(mp["trunk"])],
        heads={
            name: [resolve(b, model_globals, f"model.{name}[{i}]") for i, b in enumerate(blocks)]
            for name, blocks in heads.items()
        },
    )
    if spec.activation not in ACTIVATIONS:
        valid = ", ".join(ACTIVATIONS)
        raise SeqnnError(f"model: activation {spec.activation!r} is not one of {valid}")
    if spec.augment_rc and spec.seq_depth != 4:
        raise SeqnnError("model: augment_rc needs seq_depth 4 (one-hot ACGT)")
    if mp.get("adapter") is not None:
        if mp["adapter"] not in RECORDED_ADAPTERS:
            raise SeqnnError(f"model.adapter {mp['adapter']!r} is not one of houlsby, houlsby_se "
                             "(the adapters a fine-tuned model keeps)")
        keys = ("adapter", "adapter_latent", "conv_select", "se_rank")
        spec = replace(spec, adapter={k: mp.get(k, MODEL_KEYS[k][0]) for k in keys})
    return spec


def transfer_options(params: dict, where: str = "params") -> dict | None:
    """The params' `transfer` block with defaults filled in and checked, or None without one."""
    given = params.get("transfer")
    if given is None:
        return None
    if not isinstance(given, dict):
        raise SeqnnError(f"{where}: transfer must be a mapping of {', '.join(TRANSFER_KEYS)}")
    opts = filled_block(given, TRANSFER_KEYS, "transfer", where)
    if opts["mode"] not in TRANSFER_MODES:
        raise SeqnnError(f"{where}: transfer.mode {opts['mode']!r} is not one of "
                         f"{', '.join(TRANSFER_MODES)}")
    if opts["mode"] != "adapter":
        extra = [k for k in _ADAPTER_KEYS if k in given]
        if extra:
            log.warning("%s: transfer.mode %s uses no adapter; ignoring %s", where,
                        opts["mode"], ", ".join(extra))
        return {**opts, "adapter": None}
    if opts["adapter"] not in ADAPTERS:
        raise SeqnnError(f"{where}: transfer.mode adapter needs transfer.adapter, one of "
                         f"{', '.join(ADAPTERS)} (got {opts['adapter']!r})")
    for key in ("adapter_latent", "conv_select", "conv_latent"):
        if not isinstance(opts[key], int) or isinstance(opts[key], bool) or opts[key] < 1:
            raise SeqnnError(f"{where}: transfer.{key} must be a positive integer, got "
                             f"{opts[key]!r}")
    return opts



def output_geometry(params, trunk=False):
    """Output bins of the first head (or of the trunk) and their receptive field `(size, jump)`
    in bp."""
    spec = parse_params(params)
    length, field = spec.seq_length, (1, 1)
    for name, p in spec.trunk + ([] if trunk else next(iter(spec.heads.values()))):
        field = BLOCKS[name].receptive(field, p, length)
        length = BLOCKS[name].length(length, p)
    if length < 1:
        raise SeqnnError(f"model: seq_length {spec.seq_length} leaves {length} bins; crop less")
    return length, field



def target_length(params: dict) -> int:
    """Output length in bins of the first head, computed from the blocks without building."""
    return output_geometry(params)[0]



def receptive_field(params: dict) -> int | None:
    """Input bp one output bin of the first head depends on (it may exceed seq_length); None
    where attention, recurrence or flattening lets every bin see the whole input."""
    size = output_geometry(params)[1][0]
    return None if math.isinf(size) else math.ceil(size)



def params_reference() -> str:
    """Markdown reference of model-level keys and every block (config/models/README.md)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, (default, meaning) in MODEL_KEYS.items():
        shown = "required" if default == REQUIRED else f"`{json.dumps(default)}`"
        rows.append(f"| `{key}` | {shown} | {meaning} |")
    for key in INHERITED:
        meaning = _GLOBAL_DOCS.get(key, KEY_DOCS[key])
        rows.append(f"| `{key}` | per block | {meaning}; if given, the default of every block |")
    transfer = ["| key | default | meaning |", "|---|---|---|"]
    for key, (default, meaning) in TRANSFER_KEYS.items():
        transfer.append(f"| `{key}` | `{json.dumps(default)}` | {meaning} |")
    return "\n".join(["## Model keys", "", *rows, "", "## Transfer block", "", TRANSFER_DOC, "",
                      *transfer, "", "## Blocks", "", reference_markdown()])
