"""Keras builders of the blocks in `seqnn.model.spec.BLOCKS` (which documents each one).

`BUILDERS[name](x, p, reprs)` adds block `name` with resolved keys `p` on the Keras tensor `x`
and returns its output; `reprs` lists earlier trunk outputs (U-nets merge with them).
"""

import math

import keras

from seqnn import SeqnnError
from seqnn.model import attention, layers
from seqnn.model.conv import TapConv1D, UnfoldConv1D
from seqnn.model.defaults import CONV_BLOCK, CONV_NAC


def _l2(scale, l1=0.0):
    if l1:
        return keras.regularizers.L1L2(l1=l1, l2=scale)
    return keras.regularizers.L2(scale) if scale else None


def _act(x, activation):
    if activation in (None, "linear"):
        return x
    return layers.Activate(activation)(x)


def _norm(x, norm_type, bn_momentum, gamma=None, epsilon=1e-3):
    layer = layers.normalization(norm_type, bn_momentum, gamma, epsilon)
    return x if layer is None else layer(x)


def _dropout(x, rate):
    return keras.layers.Dropout(rate)(x) if rate > 0 else x


def _add(a, b):
    return keras.layers.Add()([a, b])


def _scale(x):
    return layers.Scale()(x)


def _dense(x, units, p, **kw):
    return keras.layers.Dense(
        units,
        kernel_initializer=p["kernel_initializer"],
        kernel_regularizer=_l2(p["l2_scale"], p.get("l1_scale", 0.0)),
        **kw,
    )(x)


# convolutions of at most this many input channels use UnfoldConv1D, the others TapConv1D;
# both run Conv1D's kernels unless seqnn.model.cpu picks the custom ones (AVX2 without AVX-512)
UNFOLD_CHANNELS = 8


def _conv(x, p, filters, kernel_size, *, dilation_rate=1, padding="same", use_bias=True):
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
    few = x.shape[-1] <= UNFOLD_CHANNELS and p["stride"] == 1 and dilation_rate == 1
    return (UnfoldConv1D if few else TapConv1D)(
        filters, kernel_size, kernel_initializer=init, kernel_regularizer=reg, **common
    )(x)


def _pool(x, pool_size, pool_type, padding):
    if pool_size <= 1:
        return x
    if pool_type in ("softmax", "attention"):
        if padding == "valid" and x.shape[1] % pool_size:
            raise SeqnnError(
                f"{pool_type} pooling: length {x.shape[1]} is not a multiple of {pool_size}"
            )
        return layers.SoftmaxPool1D(pool_size, per_channel=pool_type == "attention")(x)
    if pool_type == "avg":
        return keras.layers.AveragePooling1D(pool_size, padding=padding)(x)
    return keras.layers.MaxPool1D(pool_size, padding=padding)(x)


def _crop(x, crop):
    return keras.layers.Cropping1D(crop)(x) if crop else x


def _flat_norm(x, bn_momentum):
    """Batch norm with statistics per position and channel (PyTorch's BatchNorm1d on flat)."""
    shape = x.shape[1:]
    x = _norm(keras.layers.Flatten()(x), "batch", bn_momentum)
    return keras.layers.Reshape(shape)(x)


def _squeeze_excite(x, **kw):
    return layers.SqueezeExcite(**kw)(x)


def _sub(keys, p, **overrides):
    """Resolved parameters of a sub-block with key table `keys`, taken from its parent's `p`."""
    return {**keys, **{k: v for k, v in p.items() if k in keys}, **overrides}


def conv_block(x, p, reprs):
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
    x = _norm(x, p["norm_type"], p["bn_momentum"], p["norm_gamma"], p["norm_epsilon"])
    x = _dropout(x, p["dropout"])
    if p["residual"]:
        x = _add(x0, x)
    x = _act(x, p["activation_end"])
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def conv_nac(x, p, reprs):
    x0 = x
    x = _norm(x, p["norm_type"], p["bn_momentum"], p["norm_gamma"], p["norm_epsilon"])
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
        x = _norm(x, p["norm_type"], p["bn_momentum"], p["norm_gamma"], p["norm_epsilon"])
        x = _act(x, p["activation"])
    x = _dropout(x, p["dropout"])
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def filter_schedule(p):
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
    for filters in filter_schedule(p):
        x = conv_block(x, _sub(CONV_BLOCK, p, filters=filters), reprs)
        reprs.append(x)
    return x


def res_tower(x, p, reprs):
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
    channels = x.shape[-1]
    if channels % p["heads"]:
        raise SeqnnError(
            f"transformer_tower: heads={p['heads']} must divide the {channels} input channels"
        )
    features = p["num_position_features"]
    if features is None:
        features = channels // p["heads"] // 2 * 2
    if p["position_basis"] != "central_mask" and features % 6:
        raise SeqnnError(
            f"transformer_tower: position_basis {p['position_basis']} needs a multiple of 6 "
            f"position features, not {features} (channels / heads); set num_position_features "
            "or use position_basis central_mask"
        )
    h = keras.layers.LayerNormalization(epsilon=p["norm_epsilon"])(x)
    h = attention.MultiheadAttention(
        value_size=channels // p["heads"],
        key_size=p["key_size"],
        heads=p["heads"],
        num_position_features=features,
        attention_dropout=p["attention_dropout"],
        position_dropout=p["position_dropout"],
        content_position_bias=p["content_position_bias"],
        initializer=p["mha_initializer"],
        l2_scale=p["mha_l2_scale"],
        position_basis=p["position_basis"],
    )(h)
    x = _add(x, _dropout(h, p["dropout"]))
    if p["dense_expansion"]:
        h = keras.layers.LayerNormalization(epsilon=p["norm_epsilon"])(x)
        h = _dropout(_dense(h, int(p["dense_expansion"] * channels), p), p["dropout"])
        h = _act(h, "relu")
        h = _dropout(_dense(h, channels, p), p["dropout"])
        x = _add(x, h)
    return x


def transformer_tower(x, p, reprs):
    for _ in range(p["repeat"]):
        x = _transformer(x, p)
    return x


def unet_conv(x, p, reprs):
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
    return _squeeze_excite(x, **p)


# Keras names of the activations, for Dense(activation=...) in `final` (as Basenji builds it:
# its gelu is the exact erf form there, the tanh approximation elsewhere)
KERAS_ACTIVATIONS = {"exp": "exponential", "linear": None}


def final(x, p, reprs):
    if p["flatten"]:
        x = keras.layers.Reshape((1, x.shape[1] * x.shape[2]))(x)
    activation = KERAS_ACTIVATIONS.get(p["activation"], p["activation"])
    return _dense(x, p["units"], p, activation=activation)


def pool(x, p, reprs):
    return _pool(x, p["pool_size"], p["pool_type"], p["padding"])


def adaptive_pool(x, p, reprs):
    return layers.AdaptivePool1D(p["length"], p["pool_type"])(x)


def channel_transform(x, p, reprs):
    x = _dense(x, p["filters"], p, use_bias=p["norm_type"] is None)
    x = _act(_norm(x, p["norm_type"], p["bn_momentum"]), p["activation"])
    return _dropout(x, p["dropout"])


def gru(x, p, reprs):
    for _ in range(p["repeat"]):
        layer = keras.layers.GRU(p["units"], return_sequences=True)
        x = _dropout(keras.layers.Bidirectional(layer)(x), p["dropout"])
    return x


def explainn(x, p, reprs):
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
    x = _dense(_crop(x, p["crop"]), p["units"], p)
    if p["length"]:
        x = layers.AdaptivePool1D(p["length"], p["pool_type"])(x)
    return _act(x, p["activation"])


def mlp_head(x, p, reprs):
    x = keras.layers.Flatten()(_crop(x, p["crop"]))
    for width in p["hidden"]:
        x = _dense(x, width, p, use_bias=p["norm_type"] is None)
        x = _act(_norm(x, p["norm_type"], p["bn_momentum"]), p["hidden_activation"])
        x = _dropout(x, p["hidden_dropout"])
    x = _dense(x, p["length"] * p["units"], p)
    return _act(keras.layers.Reshape((p["length"], p["units"]))(x), p["activation"])


def _keras_layer(cls_name):
    def build(x, p, reprs):
        p = {k: tuple(v) if isinstance(v, list) else v for k, v in p.items()}
        return getattr(keras.layers, cls_name)(**p)(x)
    return build


BUILDERS = {
    "conv_block": conv_block,
    "conv_nac": conv_nac,
    "conv_dna": conv_dna,
    "conv_tower": conv_tower,
    "res_tower": res_tower,
    "dilated_residual": dilated_residual,
    "transformer_tower": transformer_tower,
    "unet_conv": unet_conv,
    "fpn_unet": unet_conv,
    "squeeze_excite": squeeze_excite,
    "final": final,
    "dense": final,
    "pool": pool,
    "adaptive_pool": adaptive_pool,
    "channel_transform": channel_transform,
    "gru": gru,
    "explainn": explainn,
    "conv_head": conv_head,
    "mlp_head": mlp_head,
    "Conv1D": _keras_layer("Conv1D"),
    "Dense": _keras_layer("Dense"),
    "Cropping1D": _keras_layer("Cropping1D"),
}
