"""Output lengths and receptive fields of blocks, from their resolved keys (no Keras).

A receptive field is `(size, jump)` in bp: `size` bp of input reach one output position,
`jump` bp apart between neighbouring positions; size is `math.inf` where every position sees
the whole input.
"""

import math


def same_field(field, p, length):
    """Receptive field `(size, jump)` in bp unchanged: `size` bp of input reach one output
    position, `jump` bp apart between neighbouring positions."""
    return field


def conv_length(length, kernel_size, stride, dilation_rate, padding):
    if padding == "valid":
        return (length - dilation_rate * (kernel_size - 1) - 1) // stride + 1
    return -(-length // stride)


def pool_length(length, pool_size, pool_type, padding):
    if pool_size <= 1:
        return length
    if padding == "valid":
        return length // pool_size
    return -(-length // pool_size)


def same_length(length, p):
    return length


def conv_block_length(length, p):
    length = conv_length(length, p["kernel_size"], p["stride"], 1, "same")
    return pool_length(length, p["pool_size"], p["pool_type"], p["padding"])


def conv_nac_length(length, p):
    length = conv_length(length, p["kernel_size"], p["stride"], p["dilation_rate"], p["padding"])
    return pool_length(length, p["pool_size"], p["pool_type"], p["padding"])


def conv_tower_length(length, p):
    for _ in range(p["repeat"]):
        length = conv_block_length(length, p)
    return length


def res_tower_length(length, p):
    for _ in range(p["repeat"]):
        length = conv_nac_length(length, {**p, "pool_size": 1})
        for _ in range(p["num_convs"] - 1):
            length = conv_nac_length(length, {**p, "kernel_size": 1, "pool_size": 1})
        length = pool_length(length, p["pool_size"], p["pool_type"], "same")
    return length


def unet_length(length, p):
    return length * p["stride"]


def final_length(length, p):
    return 1 if p["flatten"] else length


def keras_conv_length(length, p):
    padding = "same" if p["padding"] == "causal" else p["padding"]
    return conv_length(length, p["kernel_size"], p["strides"], p["dilation_rate"], padding)


def crop_length(length, crop):
    left, right = (crop, crop) if isinstance(crop, int) else crop
    return length - left - right


def cropping_length(length, p):
    return crop_length(length, p["cropping"])


def pool_block_length(length, p):
    return pool_length(length, p["pool_size"], p["pool_type"], p["padding"])


def out_length(length, p):
    return p["length"]


def conv_head_length(length, p):
    return p["length"] or crop_length(length, p["crop"])


def conv_field(field, kernel_size, dilation_rate=1, stride=1):
    size, jump = field
    return size + (kernel_size - 1) * dilation_rate * jump, jump * stride


def pool_field(field, pool_size):
    return conv_field(field, pool_size, stride=pool_size)


def global_field(field, p, length):
    return math.inf, field[1]


def conv_block_field(field, p, length):
    field = conv_field(field, p["kernel_size"], p.get("dilation_rate", 1), p["stride"])
    return pool_field(field, p["pool_size"])


def conv_tower_field(field, p, length):
    for _ in range(p["repeat"]):
        field = conv_block_field(field, p, length)
    return field


def res_tower_field(field, p, length):
    for _ in range(p["repeat"]):
        field = conv_block_field(field, {**p, "pool_size": 1}, length)
        field = pool_field(field, p["pool_size"])
    return field


def dilated_field(field, p, length):
    rate = 1.0
    for _ in range(p["repeat"]):
        field = conv_field(field, p["kernel_size"], int(round(rate)))
        rate *= p["rate_mult"]
        if p["round"]:
            rate = round(rate)
    return field


def unet_field(field, p, length):
    size, jump = field
    return conv_field((size, jump / p["stride"]), p["kernel_size"])


def final_field(field, p, length):
    return global_field(field, p, length) if p["flatten"] else field


def keras_conv_field(field, p, length):
    return conv_field(field, p["kernel_size"], p["dilation_rate"], p["strides"])


def adaptive_field(field, length, out_length):
    """PyTorch adaptive pooling: windows of up to ceil(length / out) positions."""
    size, jump = field
    return size + (-(-length // out_length) - 1) * jump, jump * length / out_length


def pool_block_field(field, p, length):
    return pool_field(field, p["pool_size"])


def adaptive_pool_field(field, p, length):
    return adaptive_field(field, length, p["length"])


def conv_head_field(field, p, length):
    length = crop_length(length, p["crop"])
    return adaptive_field(field, length, p["length"]) if p["length"] else field
