"""The block vocabulary of a params file's `trunk` and `head` lists, without Keras.

`BLOCKS` holds, per block name, its keys with defaults, what it does, and two functions of
`seqnn.model.geometry`: `length` gives its output length from its input length and `receptive`
grows the receptive field. Keys marked as globals in `keys.INHERITED` take the model-level
value when the block leaves them out. Validation (`resolve`), model building
(`seqnn.model.blocks`) and `config/models/README.md` (`reference_markdown`) all read this table.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seqnn import SeqnnError
from seqnn.model.defaults import (
    ADAPTIVE_POOL,
    CHANNEL_TRANSFORM,
    CONV_BLOCK,
    CONV_DNA,
    CONV_HEAD,
    CONV_NAC,
    CONV_TOWER,
    DILATED_RESIDUAL,
    EXPLAINN,
    FINAL,
    GRU,
    KERAS_CONV1D,
    KERAS_DENSE,
    MLP_HEAD,
    POOL,
    RES_TOWER,
    SQUEEZE_EXCITE,
    TRANSFORMER_TOWER,
    UNET_CONV,
)
from seqnn.model.geometry import (
    adaptive_pool_field,
    conv_block_field,
    conv_block_length,
    conv_head_field,
    conv_head_length,
    conv_nac_length,
    conv_tower_field,
    conv_tower_length,
    cropping_length,
    dilated_field,
    final_field,
    final_length,
    global_field,
    keras_conv_field,
    keras_conv_length,
    out_length,
    pool_block_field,
    pool_block_length,
    res_tower_field,
    res_tower_length,
    same_field,
    same_length,
    unet_field,
    unet_length,
)
from seqnn.model.keys import (
    ACTIVATIONS,
    ADAPTIVE_POOLS,
    ALIASES,
    CHOICES,
    INHERITED,
    KEY_DOCS,
    KINDS,
    REQUIRED,
)


@dataclass(frozen=True)
class Block:
    """One block kind: keys with defaults, what it does, how it sizes its output and field.

    Its Keras builder is `seqnn.model.blocks.BUILDERS[name]`.
    """

    keys: dict[str, Any]
    doc: str
    length: Callable[[int, dict], int]
    key_docs: dict[str, str] = field(default_factory=dict)
    local: tuple[str, ...] = ()  # keys never taken from the model-level globals
    choices: dict[str, tuple] = field(default_factory=dict)  # overrides CHOICES for this block
    receptive: Callable[[tuple, dict, int], tuple] = same_field


_FINAL_DOC = (
    "Dense to `units` tracks with `activation`: as in Basenji, the model's activation where the "
    "block leaves it out, linear where neither gives one; gelu is the exact (erf) GELU here, as "
    "Keras' Dense applies it in Basenji."
)


BLOCKS = {
    "conv_dna": Block(
        CONV_DNA,
        "First convolution on one-hot DNA: conv, then norm + activation or a residual 1x1 branch.",
        conv_block_length,
        receptive=conv_block_field,
    ),
    "conv_block": Block(
        CONV_BLOCK,
        "Activation, convolution, normalisation, dropout, optional residual add, max pool.",
        conv_block_length,
        receptive=conv_block_field,
    ),
    "conv_nac": Block(
        CONV_NAC,
        "Normalisation, activation, convolution (pre-activation order), dropout, residual, pool.",
        conv_nac_length,
        receptive=conv_block_field,
    ),
    "conv_tower": Block(
        CONV_TOWER,
        "Repeated conv_block with geometrically growing filters; each output is kept for U-nets.",
        conv_tower_length,
        receptive=conv_tower_field,
    ),
    "res_tower": Block(
        RES_TOWER,
        "Repeats of conv_nac (then `num_convs - 1` 1x1 conv_nac, residual), then pool. "
        "The pre-pool output of each repeat is kept for U-nets.",
        res_tower_length,
        receptive=res_tower_field,
        key_docs={
            "kernel_size": "width of each repeat's first convolution (the others are 1x1)",
            "dropout": "dropout rate after each repeat's convolutions",
            "pool_size": "max-pool width after each repeat (padding `same`)",
        },
    ),
    "dilated_residual": Block(
        DILATED_RESIDUAL,
        "Residual repeats of a dilated conv_block and a 1x1 conv_block back to the input "
        "width. The dilation starts at 1 and grows by `rate_mult`; without normalisation "
        "the branch is scaled by a zero-initialised weight, with it the second norm's "
        "gamma starts at zero.",
        same_length,
        receptive=dilated_field,
        key_docs={
            "filters": "channels of the dilated convolution",
            "dropout": "dropout rate on the 1x1 convolution of each repeat",
        },
    ),
    "transformer_tower": Block(
        TRANSFORMER_TOWER,
        "Pre-norm transformer blocks: attention with relative positions, then a ReLU MLP.",
        same_length,
        receptive=global_field,
        key_docs={
            "dropout": "dropout rate after attention and after each feed-forward layer",
            "l2_scale": "L2 penalty on the feed-forward kernels",
            "kernel_initializer": "initializer of the feed-forward kernels",
        },
    ),
    "unet_conv": Block(
        UNET_CONV,
        "Upsample by `stride` and add a dense projection of the earlier trunk output of "
        "that length. Both paths are normalised and activated first; a separable "
        "convolution mixes the sum.",
        unet_length,
        receptive=unet_field,
        key_docs={
            "stride": "upsampling factor",
            "kernel_size": "width of the separable convolution",
        },
    ),
    "fpn_unet": Block(
        {**UNET_CONV, "upsample_conv": True},
        "Older baskerville name of unet_conv with `upsample_conv: true`.",
        unet_length,
        receptive=unet_field,
        key_docs={"stride": "upsampling factor"},
    ),
    "squeeze_excite": Block(
        SQUEEZE_EXCITE,
        "Gate channels by a bottleneck MLP of their mean over length.",
        same_length,
        receptive=global_field,
    ),
    "final": Block(FINAL, _FINAL_DOC, final_length, receptive=final_field),
    "dense": Block(FINAL, "Older Basenji name of final.", final_length, receptive=final_field),
    "pool": Block(
        POOL,
        "Pool by `pool_size`: max, average, or attention (a softmax-weighted sum per window).",
        pool_block_length,
        receptive=pool_block_field,
        key_docs={"pool_size": "pooling width and stride"},
    ),
    "adaptive_pool": Block(
        ADAPTIVE_POOL,
        "Average or max pool to `length` bins whatever the input length (PyTorch adaptive "
        "pooling).",
        out_length,
        receptive=adaptive_pool_field,
        choices={"pool_type": ADAPTIVE_POOLS},
        key_docs={"pool_type": "`avg` or `max`"},
    ),
    "channel_transform": Block(
        CHANNEL_TRANSFORM,
        "Pointwise (1x1) convolution to `filters` channels, then norm, activation, dropout.",
        same_length,
    ),
    "gru": Block(
        GRU,
        "Bidirectional GRU layers over the length axis: 2 x `units` channels (both directions).",
        same_length,
        receptive=global_field,
        key_docs={
            "units": "GRU units per direction",
            "repeat": "stacked bidirectional layers",
            "dropout": "dropout rate after each layer",
        },
    ),
    "explainn": Block(
        EXPLAINN,
        "ExplaiNN units (Novakovsky et al. 2023): `units` independent single-filter CNNs. "
        "Each unit convolves the sequence with its own filter (padding valid), is "
        "batch-normalised, exponentiated and max-pooled by `pool_size`, then maps its "
        "pooled profile through its own two dense layers (batch norm and ReLU after each) "
        "to `length` values. The output, `[length, units]`, is meant for a linear `final` "
        "head, whose weights then give each unit's contribution to each track.",
        out_length,
        receptive=global_field,
        key_docs={
            "units": "independent CNN units, one filter each",
            "length": "output bins: each unit's dense layers map its whole profile to them",
            "pool_size": "max-pool width and stride after each unit's convolution",
            "hidden": "hidden units of each unit's dense layers",
            "dropout": "dropout rate after the hidden layer",
        },
    ),
    "conv_head": Block(
        CONV_HEAD,
        "Head: crop, pointwise convolution to `units` tracks, optional adaptive pool to "
        "`length` bins, output activation (softplus or exp for counts, sigmoid for binary "
        "tracks).",
        conv_head_length,
        local=("activation",),
        receptive=conv_head_field,
        choices={"pool_type": ADAPTIVE_POOLS},
        key_docs={
            "length": "adaptive-pool to this many bins (null: keep the length)",
            "pool_type": "adaptive pooling: `avg` or `max`",
            "activation": "output activation: " + ", ".join(ACTIVATIONS),
        },
    ),
    "mlp_head": Block(
        MLP_HEAD,
        "Head: crop, flatten length and channels, hidden dense layers (norm, activation, "
        "dropout), a dense layer to `length` x `units` reshaped to `[length, units]`, "
        "output activation.",
        out_length,
        local=("activation",),
        receptive=global_field,
        key_docs={
            "length": "output bins, predicted together from the flattened input",
            "activation": "output activation: " + ", ".join(ACTIVATIONS),
            "norm_type": "normalisation of the hidden layers",
        },
    ),
    "Conv1D": Block(
        KERAS_CONV1D,
        "keras.layers.Conv1D (Keras defaults: padding valid, no activation).",
        keras_conv_length,
        local=INHERITED,
        receptive=keras_conv_field,
    ),
    "Dense": Block(KERAS_DENSE, "keras.layers.Dense.", same_length, local=INHERITED),
    "Cropping1D": Block(
        {"cropping": [1, 1]},
        "keras.layers.Cropping1D: cut positions from both ends (targets' `crop_bp`).",
        cropping_length,
    ),
}


def resolve(block, model_globals, where):
    """Validate one block dict and fill its keys from globals and defaults.

    Returns `(name, params)`. Raises SeqnnError naming `where` (e.g. `model.trunk[2]`) for an
    unknown block, an unknown or missing key, a value of the wrong type or range (`KINDS`) or
    outside its choices.
    """
    if not isinstance(block, dict) or "name" not in block:
        raise SeqnnError(f"{where}: a block must be a mapping with a 'name' key, got {block!r}")
    name = block["name"]
    spec = BLOCKS.get(name)
    if spec is None:
        raise SeqnnError(f"{where}: unknown block {name!r}; valid blocks: {', '.join(BLOCKS)}")
    given = {}
    for key, value in block.items():
        if key == "name":
            continue
        if key == "batch_norm" and "norm_type" in spec.keys:
            key, value = "norm_type", "batch" if value else None
        elif key not in spec.keys and ALIASES.get(key) in spec.keys:
            key = ALIASES[key]
        if key not in spec.keys:
            raise SeqnnError(
                f"{where} ({name}): unknown key {key!r}; valid keys: {', '.join(spec.keys)}"
            )
        given[key] = value
    params = dict(spec.keys)
    for key in INHERITED:
        if key in spec.keys and key not in spec.local and model_globals.get(key) is not None:
            params[key] = model_globals[key]
    params.update(given)
    if params.get("norm_type") == "none":
        params["norm_type"] = None
    for key, value in params.items():
        if value == REQUIRED:
            raise SeqnnError(f"{where} ({name}): missing required key {key!r}")
        if not KINDS[key].accepts(value):
            raise SeqnnError(f"{where} ({name}): {key} {json.dumps(value)} must be "
                             f"{KINDS[key]}")
        choices = spec.choices.get(key, CHOICES.get(key))
        if name[0].islower() and choices and value not in choices:
            valid = ", ".join(json.dumps(c) for c in choices)
            raise SeqnnError(f"{where} ({name}): {key}={value!r} is not one of {valid}")
    return name, params


def _markdown_value(value):
    return "required" if value == REQUIRED else f"`{json.dumps(value)}`"


def reference_markdown():
    """Markdown reference of every block and key (embedded in config/models/README.md)."""
    out = []
    for name, spec in BLOCKS.items():
        doc = " ".join(spec.doc.split())
        out += [f"### `{name}`", "", doc, ""]
        out += ["| key | default | global | meaning |", "|---|---|---|---|"]
        for key, default in spec.keys.items():
            inherits = "yes" if key in INHERITED and key not in spec.local else ""
            meaning = spec.key_docs.get(key, KEY_DOCS[key])
            out.append(f"| `{key}` | {_markdown_value(default)} | {inherits} | {meaning} |")
        out.append("")
    return "\n".join(out)
