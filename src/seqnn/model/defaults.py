"""Each block's keys with their defaults, the values Basenji and baskerville use where a params
file is silent (audited in config/models/README.md). `spec.BLOCKS` pairs them with docs and
geometry; sub-blocks (a tower's conv_block) read their parent's keys through these tables.
"""

from seqnn.model.keys import REQUIRED


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
    "norm_epsilon": 0.001,
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
    "position_basis": "central_mask",
    "mha_l2_scale": 0.0,
    "mha_initializer": "he_normal",
    "norm_epsilon": 0.001,
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
    "activation": "linear",
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
