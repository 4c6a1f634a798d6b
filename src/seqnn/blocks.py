"""Basenji / baskerville blocks: the vocabulary of a params file's `trunk` and `head` lists.

`BLOCKS` holds, per block name, its keys with defaults, a docstring and three functions: `build`
adds the block's Keras layers, `length` gives its output length from its input length and
`receptive` grows the receptive field. Keys marked as globals in `INHERITED` take the
model-level value when the block leaves them out. Validation (`resolve`), model building and
`config/models/README.md` (`reference_markdown`) all read this one table. Keras is imported
only when a block is built, so validating a params file and computing its target length stay
free of TensorFlow.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seqnn import SeqnnError

REQUIRED = "<required>"

ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh", "exp", "softplus", "linear")
CHOICES = {
    "activation": (None, *ACTIVATIONS),
    "activation_end": (None, *ACTIVATIONS),
    "padding": ("same", "valid"),
    "norm_type": (None, "batch", "batch-sync", "layer"),
    "conv_type": ("standard", "separable"),
    "pool_type": ("max", "avg", "softmax", "attention"),
}
ADAPTIVE_POOLS = ("avg", "max")

# Model-level keys a block inherits when it has the key and leaves it out (as in Basenji), except
# its `local` keys: Keras layer blocks inherit nothing, `final` keeps its own activation.
INHERITED = (
    "activation",
    "norm_type",
    "bn_momentum",
    "kernel_initializer",
    "l2_scale",
    "l1_scale",
    "padding",
)

# Legacy Basenji spellings, renamed where the block has the new key.
ALIASES = {"bn_gamma": "norm_gamma", "strides": "stride"}

KEY_DOCS = {
    "filters": "output channels; null keeps the input's channels",
    "kernel_size": "convolution width",
    "activation": "activation: " + ", ".join(ACTIVATIONS),
    "activation_end": "activation applied after the residual add (null: none)",
    "stride": "convolution stride (alias `strides`)",
    "strides": "convolution stride",
    "dilation_rate": "convolution dilation",
    "l2_scale": "L2 penalty on kernels",
    "l1_scale": "L1 penalty on kernels",
    "dropout": "dropout rate",
    "dropout_residual": "dropout rate inside the residual branch",
    "conv_type": "`standard` Conv1D or `separable` SeparableConv1D",
    "residual": "add the block's input to its output (channels must match)",
    "pool_size": "max-pool width after the block (1: none)",
    "pool_type": "`max`, `avg`, `softmax` (one attention logit, baskerville) or `attention` "
    "(a logit per channel, Enformer); softmax and attention need the length to divide",
    "norm_type": "normalisation: batch, batch-sync, layer or null (legacy `batch_norm: true`)",
    "bn_momentum": "batch-norm moving-average momentum",
    "norm_gamma": "initial normalisation gamma, e.g. `zeros` (alias `bn_gamma`; null: ones)",
    "kernel_initializer": "Keras kernel initializer",
    "padding": "`same` or `valid`, for pooling (and the convolution in conv_nac)",
    "use_bias": "convolution bias; null: only without normalisation and residual",
    "se": "add a squeeze-excite gate after the convolution",
    "filters_init": "filters of the first repeat",
    "filters_end": "filters of the last repeat (growth is geometric in between)",
    "filters_mult": "filter growth per repeat (instead of `filters_end`)",
    "divisible_by": "round each repeat's filters to a multiple of this",
    "repeat": "number of repeats",
    "num_convs": "convolutions per repeat; above 1 the repeat is residual",
    "rate_mult": "dilation growth per repeat (starts at 1)",
    "round": "round the dilation rate after each repeat (as Basenji2)",
    "key_size": "query/key size per head",
    "heads": "attention heads (must divide the channels)",
    "num_position_features": "relative position basis size; null: channels/heads rounded to even",
    "dense_expansion": "feed-forward width as a multiple of the channels (0: no feed-forward)",
    "attention_dropout": "dropout on attention weights",
    "position_dropout": "dropout on the positional basis",
    "content_position_bias": "positional logits depend on the query (Enformer)",
    "mha_l2_scale": "L2 penalty on attention projections",
    "mha_initializer": "initializer of attention projections",
    "upsample_conv": "project the upsampled input with a dense layer too",
    "additive": "add the excitation instead of gating with it",
    "bottleneck_ratio": "excitation bottleneck: channels // ratio units",
    "units": "output tracks (dense units)",
    "flatten": "flatten the length axis into one position first",
    "cropping": "positions cut from each end: n or [left, right]",
    "groups": "convolution groups",
    "scale_residual": "scale the residual branch by a learned, zero-initialised weight per channel",
    "length": "output bins",
    "crop": "positions cut from each end of the input first: n or [left, right]",
    "hidden": "widths of the hidden dense layers",
    "hidden_activation": "activation of the hidden layers",
    "hidden_dropout": "dropout rate after each hidden layer",
}


def _same_field(field, p, length):
    """Receptive field `(size, jump)` in bp unchanged: `size` bp of input reach one output
    position, `jump` bp apart between neighbouring positions."""
    return field


@dataclass(frozen=True)
class Block:
    """One block kind: keys with defaults, what it does, how it builds and sizes its output."""

    keys: dict[str, Any]
    doc: str
    build: Callable[..., Any]
    length: Callable[[int, dict], int]
    key_docs: dict[str, str] = field(default_factory=dict)
    local: tuple[str, ...] = ()  # keys never taken from the model-level globals
    choices: dict[str, tuple] = field(default_factory=dict)  # overrides CHOICES for this block
    receptive: Callable[[tuple, dict, int], tuple] = _same_field


# ---------------------------------------------------------------------------------------------
# Layer helpers (Keras imported lazily)


def _l2(scale, l1=0.0):
    import keras

    if l1:
        return keras.regularizers.L1L2(l1=l1, l2=scale)
    return keras.regularizers.L2(scale) if scale else None


def _act(x, activation):
    from seqnn import layers

    if activation in (None, "linear"):
        return x
    return layers.Activate(activation)(x)


def _norm(x, norm_type, bn_momentum, gamma=None):
    from seqnn import layers

    layer = layers.normalization(norm_type, bn_momentum, gamma)
    return x if layer is None else layer(x)


def _dropout(x, rate):
    import keras

    return keras.layers.Dropout(rate)(x) if rate > 0 else x


def _add(a, b):
    import keras

    return keras.layers.Add()([a, b])


def _scale(x):
    from seqnn import layers

    return layers.Scale()(x)


def _dense(x, units, p, **kw):
    import keras

    return keras.layers.Dense(
        units,
        kernel_initializer=p["kernel_initializer"],
        kernel_regularizer=_l2(p["l2_scale"], p.get("l1_scale", 0.0)),
        **kw,
    )(x)


UNFOLD_CHANNELS = 8  # convolutions of at most this many input channels use UnfoldConv1D


def _conv(x, p, filters, kernel_size, *, dilation_rate=1, padding="same", use_bias=True):
    import keras

    reg, init = _l2(p["l2_scale"]), p["kernel_initializer"]
    common = dict(
        strides=p["stride"], padding=padding, dilation_rate=dilation_rate, use_bias=use_bias
    )
    if p["conv_type"] == "separable":
        return keras.layers.SeparableConv1D(
            filters,
            kernel_size,
            depthwise_initializer=init,
            pointwise_initializer=init,
            depthwise_regularizer=reg,
            pointwise_regularizer=reg,
            **common,
        )(x)
    from seqnn.layers import TapConv1D, UnfoldConv1D

    few = x.shape[-1] <= UNFOLD_CHANNELS and p["stride"] == 1 and dilation_rate == 1
    return (UnfoldConv1D if few else TapConv1D)(
        filters, kernel_size, kernel_initializer=init, kernel_regularizer=reg, **common
    )(x)


def _pool(x, pool_size, pool_type, padding):
    import keras

    from seqnn import layers

    if pool_size <= 1:
        return x
    if pool_type in ("softmax", "attention"):
        if x.shape[1] % pool_size:
            raise SeqnnError(
                f"{pool_type} pooling: length {x.shape[1]} is not a multiple of {pool_size}"
            )
        return layers.SoftmaxPool1D(pool_size, per_channel=pool_type == "attention")(x)
    if pool_type == "avg":
        return keras.layers.AveragePooling1D(pool_size, padding=padding)(x)
    return keras.layers.MaxPool1D(pool_size, padding=padding)(x)


def _crop(x, crop):
    import keras

    return keras.layers.Cropping1D(crop)(x) if crop else x


def _flat_norm(x, bn_momentum):
    """Batch norm with statistics per position and channel (PyTorch's BatchNorm1d on flat)."""
    import keras

    shape = x.shape[1:]
    x = _norm(keras.layers.Flatten()(x), "batch", bn_momentum)
    return keras.layers.Reshape(shape)(x)


def _squeeze_excite(x, **kw):
    from seqnn import layers

    return layers.SqueezeExcite(**kw)(x)


# ---------------------------------------------------------------------------------------------
# Output lengths


def _conv_length(length, kernel_size, stride, dilation_rate, padding):
    if padding == "valid":
        return (length - dilation_rate * (kernel_size - 1) - 1) // stride + 1
    return -(-length // stride)


def _pool_length(length, pool_size, pool_type, padding):
    if pool_size <= 1:
        return length
    if pool_type in ("softmax", "attention") or padding == "valid":
        return length // pool_size
    return -(-length // pool_size)


def _same_length(length, p):
    return length


def _conv_block_length(length, p):
    length = _conv_length(length, p["kernel_size"], p["stride"], 1, "same")
    return _pool_length(length, p["pool_size"], p["pool_type"], p["padding"])


def _conv_nac_length(length, p):
    length = _conv_length(length, p["kernel_size"], p["stride"], p["dilation_rate"], p["padding"])
    return _pool_length(length, p["pool_size"], p["pool_type"], p["padding"])


def _conv_tower_length(length, p):
    for _ in range(p["repeat"]):
        length = _conv_block_length(length, p)
    return length


def _res_tower_length(length, p):
    for _ in range(p["repeat"]):
        length = _conv_nac_length(length, {**p, "pool_size": 1})
        for _ in range(p["num_convs"] - 1):
            length = _conv_nac_length(length, {**p, "kernel_size": 1, "pool_size": 1})
        length = _pool_length(length, p["pool_size"], p["pool_type"], "same")
    return length


def _unet_length(length, p):
    return length * p["stride"]


def _final_length(length, p):
    return 1 if p["flatten"] else length


def _keras_conv_length(length, p):
    padding = "same" if p["padding"] == "causal" else p["padding"]
    return _conv_length(length, p["kernel_size"], p["strides"], p["dilation_rate"], padding)


def _crop_length(length, crop):
    left, right = (crop, crop) if isinstance(crop, int) else crop
    return length - left - right


def _cropping_length(length, p):
    return _crop_length(length, p["cropping"])


def _pool_block_length(length, p):
    return _pool_length(length, p["pool_size"], p["pool_type"], p["padding"])


def _out_length(length, p):
    return p["length"]


def _conv_head_length(length, p):
    return p["length"] or _crop_length(length, p["crop"])


# ---------------------------------------------------------------------------------------------
# Receptive fields: `(size, jump)` in bp, size `math.inf` where every position sees the input


def _conv_field(field, kernel_size, dilation_rate=1, stride=1):
    size, jump = field
    return size + (kernel_size - 1) * dilation_rate * jump, jump * stride


def _pool_field(field, pool_size):
    return _conv_field(field, pool_size, stride=pool_size)


def _global_field(field, p, length):
    return math.inf, field[1]


def _conv_block_field(field, p, length):
    field = _conv_field(field, p["kernel_size"], p.get("dilation_rate", 1), p["stride"])
    return _pool_field(field, p["pool_size"])


def _conv_tower_field(field, p, length):
    for _ in range(p["repeat"]):
        field = _conv_block_field(field, p, length)
    return field


def _res_tower_field(field, p, length):
    for _ in range(p["repeat"]):
        field = _conv_block_field(field, {**p, "pool_size": 1}, length)
        field = _pool_field(field, p["pool_size"])
    return field


def _dilated_field(field, p, length):
    rate = 1.0
    for _ in range(p["repeat"]):
        field = _conv_field(field, p["kernel_size"], int(round(rate)))
        rate *= p["rate_mult"]
        if p["round"]:
            rate = round(rate)
    return field


def _unet_field(field, p, length):
    size, jump = field
    return _conv_field((size, jump / p["stride"]), p["kernel_size"])


def _final_field(field, p, length):
    return _global_field(field, p, length) if p["flatten"] else field


def _keras_conv_field(field, p, length):
    return _conv_field(field, p["kernel_size"], p["dilation_rate"], p["strides"])


def _adaptive_field(field, length, out_length):
    """PyTorch adaptive pooling: windows of up to ceil(length / out) positions."""
    size, jump = field
    return size + (-(-length // out_length) - 1) * jump, jump * length / out_length


def _pool_block_field(field, p, length):
    return _pool_field(field, p["pool_size"])


def _adaptive_pool_field(field, p, length):
    return _adaptive_field(field, length, p["length"])


def _conv_head_field(field, p, length):
    length = _crop_length(length, p["crop"])
    return _adaptive_field(field, length, p["length"]) if p["length"] else field


# ---------------------------------------------------------------------------------------------
# Blocks


def _sub(keys, p, **overrides):
    """Resolved parameters of a sub-block with key table `keys`, taken from its parent's `p`."""
    return {**keys, **{k: v for k, v in p.items() if k in keys}, **overrides}


def conv_block(x, p, reprs):
    """Activation, convolution, normalisation, dropout, optional residual add, max pool."""
    x0 = x
    x = _act(x, p["activation"])
    x = _conv(
        x,
        p,
        p["filters"] or x.shape[-1],
        p["kernel_size"],
        dilation_rate=p["dilation_rate"],
        use_bias=p["norm_type"] is None,
    )
    x = _norm(x, p["norm_type"], p["bn_momentum"], p["norm_gamma"])
    x = _dropout(x, p["dropout"])
    if p["residual"]:
        x = _add(x0, x)
    x = _act(x, p["activation_end"])
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def conv_nac(x, p, reprs):
    """Normalisation, activation, convolution (pre-activation order), dropout, residual, pool."""
    x0 = x
    x = _norm(x, p["norm_type"], p["bn_momentum"], p["norm_gamma"])
    x = _act(x, p["activation"])
    x = _conv(
        x,
        p,
        p["filters"] or x.shape[-1],
        p["kernel_size"],
        dilation_rate=p["dilation_rate"],
        padding=p["padding"],
    )
    if p["se"]:
        x = _squeeze_excite(x)
    x = _dropout(x, p["dropout"])
    if p["residual"]:
        x = _add(x0, x)
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def _residual_add(x, branch, p):
    return _add(x, _scale(branch) if p["scale_residual"] else branch)


def conv_dna(x, p, reprs):
    """First convolution on one-hot DNA: conv, then norm + activation or a residual 1x1 branch."""
    use_bias = p["use_bias"]
    if use_bias is None:
        use_bias = p["norm_type"] is None and not p["residual"]
    x = _conv(x, p, p["filters"] or x.shape[-1], p["kernel_size"], use_bias=use_bias)
    if p["se"]:
        x = _squeeze_excite(x)
    if p["residual"]:
        branch = _sub(
            CONV_NAC,
            p,
            filters=None,
            kernel_size=1,
            stride=1,
            dropout=p["dropout_residual"],
            residual=False,
            pool_size=1,
            norm_gamma=None,
            padding="same",
        )
        x = _residual_add(x, conv_nac(x, branch, reprs), p)
    else:
        x = _norm(x, p["norm_type"], p["bn_momentum"], p["norm_gamma"])
        x = _act(x, p["activation"])
    x = _dropout(x, p["dropout"])
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def filter_schedule(p):
    """Filters of each tower repeat: geometric from `filters_init` by `filters_mult` (or to
    `filters_end`), each rounded to a multiple of `divisible_by`."""
    current, repeat, divisible = p["filters_init"], p["repeat"], p["divisible_by"]
    mult = p["filters_mult"]
    if mult is None:
        if p["filters_end"] is None:
            raise SeqnnError("tower block: give filters_mult or filters_end with filters_init")
        ratio = p["filters_end"] / current
        mult = math.exp(math.log(ratio) / (repeat - 1)) if repeat > 1 else 1.0
    filters = []
    for _ in range(repeat):
        filters.append(int(round(current / divisible) * divisible))
        current *= mult
    return filters


def conv_tower(x, p, reprs):
    """Repeated conv_block with geometrically growing filters; each output is kept for U-nets."""
    for filters in filter_schedule(p):
        x = conv_block(x, _sub(CONV_BLOCK, p, filters=filters), reprs)
        reprs.append(x)
    return x


def res_tower(x, p, reprs):
    """Repeats of conv_nac (then `num_convs - 1` 1x1 conv_nac, residual), then pool.

    The pre-pool output of each repeat is kept for U-nets.
    """
    for filters in filter_schedule(p):
        sub = _sub(CONV_NAC, p, filters=filters, dropout=0.0, pool_size=1)
        x = x0 = conv_nac(x, sub, reprs)
        for _ in range(p["num_convs"] - 1):
            x = conv_nac(x, {**sub, "kernel_size": 1}, reprs)
        x = _dropout(x, p["dropout"])
        if p["num_convs"] > 1:
            x = _residual_add(x0, x, p)
        reprs.append(x)
        x = _pool(x, p["pool_size"], p["pool_type"], "same")
    return x


def dilated_residual(x, p, reprs):
    """Residual repeats of a dilated conv_block and a 1x1 conv_block back to the input width.

    The dilation starts at 1 and grows by `rate_mult`; without normalisation the branch is
    scaled by a zero-initialised weight, with it the second norm's gamma starts at zero.
    """
    rate = 1.0
    for _ in range(p["repeat"]):
        x0 = x
        x = conv_block(
            x,
            _sub(CONV_BLOCK, p, dilation_rate=int(round(rate)), norm_gamma="ones", dropout=0.0),
            reprs,
        )
        x = conv_block(
            x,
            _sub(
                CONV_BLOCK,
                p,
                filters=x0.shape[-1],
                kernel_size=1,
                conv_type="standard",
                norm_gamma="zeros",
            ),
            reprs,
        )
        if p["norm_type"] is None:
            x = _scale(x)
        x = _add(x0, x)
        rate *= p["rate_mult"]
        if p["round"]:
            rate = round(rate)
    return x


def _transformer(x, p):
    import keras

    from seqnn import layers

    channels = x.shape[-1]
    if channels % p["heads"]:
        raise SeqnnError(
            f"transformer_tower: heads={p['heads']} must divide the {channels} input channels"
        )
    h = keras.layers.LayerNormalization()(x)
    h = layers.MultiheadAttention(
        value_size=channels // p["heads"],
        key_size=p["key_size"],
        heads=p["heads"],
        num_position_features=p["num_position_features"],
        attention_dropout=p["attention_dropout"],
        position_dropout=p["position_dropout"],
        content_position_bias=p["content_position_bias"],
        initializer=p["mha_initializer"],
        l2_scale=p["mha_l2_scale"],
    )(h)
    x = _add(x, _dropout(h, p["dropout"]))
    if p["dense_expansion"]:
        h = keras.layers.LayerNormalization()(x)
        h = _dropout(_dense(h, int(p["dense_expansion"] * channels), p), p["dropout"])
        h = _act(h, "relu")
        h = _dropout(_dense(h, channels, p), p["dropout"])
        x = _add(x, h)
    return x


def transformer_tower(x, p, reprs):
    """Pre-norm transformer blocks: attention with relative positions, then a ReLU MLP."""
    for _ in range(p["repeat"]):
        x = _transformer(x, p)
    return x


def unet_conv(x, p, reprs):
    """Upsample by `stride` and add a dense projection of the earlier trunk output of that length.

    Both paths are normalised and activated first; a separable convolution mixes the sum.
    """
    import keras

    target = x.shape[1] * p["stride"]
    skip = next((r for r in reversed(reprs[:-1]) if r.shape[1] == target), None)
    if skip is None:
        raise SeqnnError(
            f"unet_conv: no earlier trunk output of length {target} to merge with length "
            f"{x.shape[1]}; place unet_conv after a tower that pooled from that length"
        )
    filters = x.shape[-1]
    x = _act(_norm(x, p["norm_type"], p["bn_momentum"]), p["activation"])
    skip = _act(_norm(skip, p["norm_type"], p["bn_momentum"]), p["activation"])
    if p["upsample_conv"]:
        x = _dense(x, filters, p)
    skip = _dense(skip, filters, p)
    x = _add(keras.layers.UpSampling1D(p["stride"])(x), skip)
    x = keras.layers.SeparableConv1D(
        filters,
        p["kernel_size"],
        padding="same",
        depthwise_initializer=p["kernel_initializer"],
        pointwise_initializer=p["kernel_initializer"],
        depthwise_regularizer=_l2(p["l2_scale"]),
        pointwise_regularizer=_l2(p["l2_scale"]),
    )(x)
    return _dropout(x, p["dropout"])


def squeeze_excite(x, p, reprs):
    """Gate channels by a bottleneck MLP of their mean over length."""
    return _squeeze_excite(x, **p)


def final(x, p, reprs):
    """Dense layer to the output tracks with its activation (softplus for count data)."""
    import keras

    if p["flatten"]:
        x = keras.layers.Reshape((1, x.shape[1] * x.shape[2]))(x)
    return _act(_dense(x, p["units"], p), p["activation"])


def pool(x, p, reprs):
    """Pool by `pool_size`: max, average, or attention (a softmax-weighted sum per window)."""
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def adaptive_pool(x, p, reprs):
    """Average or max pool to `length` bins whatever the input length (PyTorch adaptive pooling)."""
    from seqnn import layers

    return layers.AdaptivePool1D(p["length"], p["pool_type"])(x)


def channel_transform(x, p, reprs):
    """Pointwise (1x1) convolution to `filters` channels, then norm, activation, dropout."""
    x = _dense(x, p["filters"], p, use_bias=p["norm_type"] is None)
    x = _act(_norm(x, p["norm_type"], p["bn_momentum"]), p["activation"])
    return _dropout(x, p["dropout"])


def gru(x, p, reprs):
    """Bidirectional GRU layers over the length axis: 2 x `units` channels (both directions)."""
    import keras

    for _ in range(p["repeat"]):
        layer = keras.layers.GRU(p["units"], return_sequences=True)
        x = _dropout(keras.layers.Bidirectional(layer)(x), p["dropout"])
    return x


def explainn(x, p, reprs):
    """ExplaiNN units (Novakovsky et al. 2023): `units` independent single-filter CNNs.

    Each unit convolves the sequence with its own filter (padding valid), is batch-normalised,
    exponentiated and max-pooled by `pool_size`, then maps its pooled profile through its own
    two dense layers (batch norm and ReLU after each) to `length` values. The output,
    `[length, units]`, is meant for a linear `final` head, whose weights then give each unit's
    contribution to each track.
    """
    import keras

    from seqnn import layers

    x = keras.layers.Conv1D(
        p["units"],
        p["kernel_size"],
        kernel_initializer=p["kernel_initializer"],
        kernel_regularizer=_l2(p["l2_scale"]),
    )(x)
    x = _act(_norm(x, "batch", p["bn_momentum"]), "exp")
    x = keras.layers.MaxPool1D(p["pool_size"])(x)
    for size, rate in ((p["hidden"], p["dropout"]), (p["length"], 0.0)):
        x = _flat_norm(layers.UnitDense(size)(x), p["bn_momentum"])
        x = _dropout(_act(x, "relu"), rate)
    return x


def conv_head(x, p, reprs):
    """Head: crop, pointwise convolution to `units` tracks, optional adaptive pool to `length`
    bins, output activation (softplus or exp for counts, sigmoid for binary tracks)."""
    from seqnn import layers

    x = _dense(_crop(x, p["crop"]), p["units"], p)
    if p["length"]:
        x = layers.AdaptivePool1D(p["length"], p["pool_type"])(x)
    return _act(x, p["activation"])


def mlp_head(x, p, reprs):
    """Head: crop, flatten length and channels, hidden dense layers (norm, activation, dropout),
    a dense layer to `length` x `units` reshaped to `[length, units]`, output activation."""
    import keras

    x = keras.layers.Flatten()(_crop(x, p["crop"]))
    for width in p["hidden"]:
        x = _dense(x, width, p, use_bias=p["norm_type"] is None)
        x = _act(_norm(x, p["norm_type"], p["bn_momentum"]), p["hidden_activation"])
        x = _dropout(x, p["hidden_dropout"])
    x = _dense(x, p["length"] * p["units"], p)
    return _act(keras.layers.Reshape((p["length"], p["units"]))(x), p["activation"])


def _keras_layer(cls_name):
    def build(x, p, reprs):
        import keras

        p = {k: tuple(v) if isinstance(v, list) else v for k, v in p.items()}
        return getattr(keras.layers, cls_name)(**p)(x)

    build.__doc__ = f"keras.layers.{cls_name} with the block's keys as arguments."
    return build


# ---------------------------------------------------------------------------------------------
# The table


def _without(keys, *names):
    return {k: v for k, v in keys.items() if k not in names}


_CONV = {
    "filters": None,
    "kernel_size": 1,
    "activation": "relu",
    "stride": 1,
    "dilation_rate": 1,
    "l2_scale": 0.0,
    "dropout": 0.0,
    "conv_type": "standard",
    "residual": False,
    "pool_size": 1,
    "pool_type": "max",
    "norm_type": None,
    "bn_momentum": 0.99,
    "norm_gamma": None,
    "kernel_initializer": "he_normal",
    "padding": "same",
}
CONV_BLOCK = {**_CONV, "activation_end": None}
CONV_NAC = {**_CONV, "se": False}
CONV_DNA = {
    **_without(_CONV, "dilation_rate"),
    "kernel_size": 15,
    "dropout_residual": 0.0,
    "scale_residual": True,
    "use_bias": None,
    "se": False,
}
_TOWER = {
    "filters_init": REQUIRED,
    "filters_end": None,
    "filters_mult": None,
    "divisible_by": 1,
    "repeat": 1,
}
CONV_TOWER = {**_TOWER, **_without(CONV_BLOCK, "filters")}
RES_TOWER = {
    **_TOWER,
    "num_convs": 2,
    "scale_residual": True,
    **_without(CONV_NAC, "filters"),
    "pool_size": 2,
}
DILATED_RESIDUAL = {
    "filters": REQUIRED,
    "kernel_size": 3,
    "rate_mult": 2.0,
    "round": False,
    "repeat": 1,
    "dropout": 0.0,
    "activation": "relu",
    "conv_type": "standard",
    "norm_type": None,
    "bn_momentum": 0.99,
    "l2_scale": 0.0,
    "kernel_initializer": "he_normal",
}
TRANSFORMER_TOWER = {
    "key_size": REQUIRED,
    "heads": 1,
    "repeat": 2,
    "num_position_features": None,
    "dense_expansion": 2.0,
    "dropout": 0.25,
    "attention_dropout": 0.05,
    "position_dropout": 0.01,
    "content_position_bias": True,
    "mha_l2_scale": 0.0,
    "mha_initializer": "he_normal",
    "l2_scale": 0.0,
    "kernel_initializer": "he_normal",
}
UNET_CONV = {
    "stride": 2,
    "kernel_size": 1,
    "upsample_conv": False,
    "activation": "relu",
    "norm_type": None,
    "bn_momentum": 0.99,
    "dropout": 0.0,
    "l2_scale": 0.0,
    "kernel_initializer": "he_normal",
}
SQUEEZE_EXCITE = {
    "activation": "relu",
    "additive": False,
    "bottleneck_ratio": 8,
    "norm_type": None,
    "bn_momentum": 0.9,
}
FINAL = {
    "units": REQUIRED,
    "activation": "softplus",
    "flatten": False,
    "kernel_initializer": "he_normal",
    "l2_scale": 0.0,
    "l1_scale": 0.0,
}
POOL = {"pool_size": 2, "pool_type": "max", "padding": "same"}
ADAPTIVE_POOL = {"length": REQUIRED, "pool_type": "avg"}
CHANNEL_TRANSFORM = {
    "filters": REQUIRED,
    "activation": "relu",
    "norm_type": None,
    "bn_momentum": 0.99,
    "dropout": 0.0,
    "kernel_initializer": "he_normal",
    "l2_scale": 0.0,
}
GRU = {"units": REQUIRED, "repeat": 1, "dropout": 0.0}
EXPLAINN = {
    "units": REQUIRED,
    "length": REQUIRED,
    "kernel_size": 19,
    "pool_size": 7,
    "hidden": 100,
    "dropout": 0.3,
    "bn_momentum": 0.9,
    "kernel_initializer": "he_normal",
    "l2_scale": 0.0,
}
_HEAD = {
    "units": REQUIRED,
    "crop": 0,
    "activation": "softplus",
    "kernel_initializer": "he_normal",
    "l2_scale": 0.0,
}
CONV_HEAD = {**_HEAD, "length": None, "pool_type": "avg"}
MLP_HEAD = {
    **_HEAD,
    "length": 1,
    "hidden": [],
    "hidden_activation": "relu",
    "hidden_dropout": 0.0,
    "norm_type": None,
    "bn_momentum": 0.99,
}
KERAS_CONV1D = {
    "filters": REQUIRED,
    "kernel_size": REQUIRED,
    "strides": 1,
    "padding": "valid",
    "dilation_rate": 1,
    "groups": 1,
    "activation": None,
    "use_bias": True,
    "kernel_initializer": "glorot_uniform",
}
KERAS_DENSE = {
    "units": REQUIRED,
    "activation": None,
    "use_bias": True,
    "kernel_initializer": "glorot_uniform",
}

_FINAL_DOC = "Dense to `units` tracks, then `activation` (not inherited from the model)."

BLOCKS = {
    "conv_dna": Block(
        CONV_DNA, conv_dna.__doc__, conv_dna, _conv_block_length, receptive=_conv_block_field
    ),
    "conv_block": Block(
        CONV_BLOCK, conv_block.__doc__, conv_block, _conv_block_length, receptive=_conv_block_field
    ),
    "conv_nac": Block(
        CONV_NAC, conv_nac.__doc__, conv_nac, _conv_nac_length, receptive=_conv_block_field
    ),
    "conv_tower": Block(
        CONV_TOWER, conv_tower.__doc__, conv_tower, _conv_tower_length, receptive=_conv_tower_field
    ),
    "res_tower": Block(
        RES_TOWER,
        res_tower.__doc__,
        res_tower,
        _res_tower_length,
        receptive=_res_tower_field,
        key_docs={
            "kernel_size": "width of each repeat's first convolution (the others are 1x1)",
            "dropout": "dropout rate after each repeat's convolutions",
            "pool_size": "max-pool width after each repeat (padding `same`)",
        },
    ),
    "dilated_residual": Block(
        DILATED_RESIDUAL,
        dilated_residual.__doc__,
        dilated_residual,
        _same_length,
        receptive=_dilated_field,
        key_docs={
            "filters": "channels of the dilated convolution",
            "dropout": "dropout rate on the 1x1 convolution of each repeat",
        },
    ),
    "transformer_tower": Block(
        TRANSFORMER_TOWER,
        transformer_tower.__doc__,
        transformer_tower,
        _same_length,
        receptive=_global_field,
        key_docs={
            "dropout": "dropout rate after attention and after each feed-forward layer",
            "l2_scale": "L2 penalty on the feed-forward kernels",
            "kernel_initializer": "initializer of the feed-forward kernels",
        },
    ),
    "unet_conv": Block(
        UNET_CONV,
        unet_conv.__doc__,
        unet_conv,
        _unet_length,
        receptive=_unet_field,
        key_docs={
            "stride": "upsampling factor",
            "kernel_size": "width of the separable convolution",
        },
    ),
    "fpn_unet": Block(
        {**UNET_CONV, "upsample_conv": True},
        "Older baskerville name of unet_conv with `upsample_conv: true`.",
        unet_conv,
        _unet_length,
        receptive=_unet_field,
        key_docs={"stride": "upsampling factor"},
    ),
    "squeeze_excite": Block(
        SQUEEZE_EXCITE,
        squeeze_excite.__doc__,
        squeeze_excite,
        _same_length,
        receptive=_global_field,
    ),
    "final": Block(
        FINAL, _FINAL_DOC, final, _final_length, local=("activation",), receptive=_final_field
    ),
    "dense": Block(
        FINAL,
        "Older Basenji name of final.",
        final,
        _final_length,
        local=("activation",),
        receptive=_final_field,
    ),
    "pool": Block(
        POOL,
        pool.__doc__,
        pool,
        _pool_block_length,
        receptive=_pool_block_field,
        key_docs={"pool_size": "pooling width and stride"},
    ),
    "adaptive_pool": Block(
        ADAPTIVE_POOL,
        adaptive_pool.__doc__,
        adaptive_pool,
        _out_length,
        receptive=_adaptive_pool_field,
        choices={"pool_type": ADAPTIVE_POOLS},
        key_docs={"pool_type": "`avg` or `max`"},
    ),
    "channel_transform": Block(
        CHANNEL_TRANSFORM, channel_transform.__doc__, channel_transform, _same_length
    ),
    "gru": Block(
        GRU,
        gru.__doc__,
        gru,
        _same_length,
        receptive=_global_field,
        key_docs={
            "units": "GRU units per direction",
            "repeat": "stacked bidirectional layers",
            "dropout": "dropout rate after each layer",
        },
    ),
    "explainn": Block(
        EXPLAINN,
        explainn.__doc__,
        explainn,
        _out_length,
        receptive=_global_field,
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
        conv_head.__doc__,
        conv_head,
        _conv_head_length,
        local=("activation",),
        receptive=_conv_head_field,
        choices={"pool_type": ADAPTIVE_POOLS},
        key_docs={
            "length": "adaptive-pool to this many bins (null: keep the length)",
            "pool_type": "adaptive pooling: `avg` or `max`",
            "activation": "output activation: " + ", ".join(ACTIVATIONS),
        },
    ),
    "mlp_head": Block(
        MLP_HEAD,
        mlp_head.__doc__,
        mlp_head,
        _out_length,
        local=("activation",),
        receptive=_global_field,
        key_docs={
            "length": "output bins, predicted together from the flattened input",
            "activation": "output activation: " + ", ".join(ACTIVATIONS),
            "norm_type": "normalisation of the hidden layers",
        },
    ),
    "Conv1D": Block(
        KERAS_CONV1D,
        "keras.layers.Conv1D (Keras defaults: padding valid, no activation).",
        _keras_layer("Conv1D"),
        _keras_conv_length,
        local=INHERITED,
        receptive=_keras_conv_field,
    ),
    "Dense": Block(
        KERAS_DENSE, "keras.layers.Dense.", _keras_layer("Dense"), _same_length, local=INHERITED
    ),
    "Cropping1D": Block(
        {"cropping": [1, 1]},
        "keras.layers.Cropping1D: cut positions from both ends (targets' `crop_bp`).",
        _keras_layer("Cropping1D"),
        _cropping_length,
    ),
}


def resolve(block, model_globals, where):
    """Validate one block dict and fill its keys from globals and defaults.

    Returns `(name, params)`. Raises SeqnnError naming `where` (e.g. `model.trunk[2]`) for an
    unknown block, an unknown or missing key, or a value outside its choices.
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
