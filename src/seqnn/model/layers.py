"""Custom Keras 3 layers for sequence-to-coverage models.

Every layer is registered for `.keras` round-trips and written with `keras.ops`, so it runs on
any Keras backend. Shapes: sequences are `[batch, length, 4]` one-hot (A, C, G, T); feature maps
are `[batch, length, channels]`.
"""

import math

import keras
import numpy as np
from keras import ops

from seqnn.model.keys import ACTIVATIONS

register = keras.saving.register_keras_serializable(package="seqnn")


GELU_LINEAR = 2 * math.sqrt(2 / math.pi)  # tanh-approximate GELU: x sigmoid(x (a + b x^2))
GELU_CUBIC = GELU_LINEAR * 0.044715


@ops.custom_gradient
def gelu(x):
    """GELU, tanh approximation, written as `x sigmoid(2z)` (equal to `0.5 x (1 + tanh z)`) with
    its derivative from the saved sigmoid: half the elementwise passes of the composite op."""
    square = ops.square(x)
    gate = ops.sigmoid(x * (GELU_LINEAR + GELU_CUBIC * square))

    def grad(*args, upstream=None):
        dy = args[0] if upstream is None else upstream
        slope = x * gate * (1 - gate) * (GELU_LINEAR + 3 * GELU_CUBIC * square)
        return dy * (gate + slope)

    return x * gate, grad


@register
class Activate(keras.layers.Layer):
    """Elementwise activation by name.

    `gelu` is the tanh approximation (baskerville); `gelu_sigmoid` is `x sigmoid(1.702 x)`
    (Basenji, enformer-pytorch).

    Args:
        activation: relu, gelu, gelu_sigmoid, sigmoid, tanh, exp, softplus or linear.

    Input shape: any. Output shape: the input's.
    """

    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        self.activation = activation

    def call(self, x):
        if self.activation == "relu":
            return ops.relu(x)
        if self.activation == "gelu":
            return gelu(x)
        if self.activation == "gelu_sigmoid":
            return x * ops.sigmoid(1.702 * x)
        if self.activation == "sigmoid":
            return ops.sigmoid(x)
        if self.activation == "tanh":
            return ops.tanh(x)
        if self.activation == "exp":
            return ops.exp(x)
        if self.activation == "softplus":
            return ops.softplus(x)
        return x

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@register
class Scale(keras.layers.Layer):
    """Multiply each channel by a learned scalar (zero-initialised: residual branches start off).

    Args:
        initializer: initializer of the `[channels]` scale.

    Input shape: `[batch, length, channels]`. Output shape: the input's.
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],), initializer=self.initializer
        )

    def call(self, x):
        return x * self.scale

    def get_config(self):
        init = keras.initializers.serialize(self.initializer)
        return {**super().get_config(), "initializer": init}


@register
class SoftmaxPool1D(keras.layers.Layer):
    """Attention pooling (Enformer): softmax-weighted sum over each window of `pool_size`.

    A gain of 2 starts close to max pooling, 0 is average pooling. A length that is not a
    multiple of `pool_size` is padded at the end with positions whose logits are masked out
    (enformer-pytorch's AttentionPool): the last window pools the positions it has.

    Args:
        pool_size: window width and stride.
        per_channel: one logit per channel (Enformer's `attention`) or one shared (`softmax`).
        init_gain: initial value of the logit weights' diagonal.

    Input shape: `[batch, length, channels]`.
    Output shape: `[batch, ceil(length / pool_size), channels]`.
    """

    def __init__(self, pool_size=2, per_channel=False, init_gain=2.0, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.per_channel = per_channel
        self.init_gain = init_gain

    def build(self, input_shape):
        channels = input_shape[-1]
        self.logits = keras.layers.Dense(
            channels if self.per_channel else 1,
            use_bias=False,
            kernel_initializer=keras.initializers.Identity(self.init_gain),
        )
        self.logits.build((None, None, self.pool_size, channels))

    def call(self, x):
        length, channels = x.shape[1], x.shape[2]
        pad = -length % self.pool_size
        if pad:
            x = ops.pad(x, ((0, 0), (0, pad), (0, 0)))
        x = ops.reshape(x, (-1, (length + pad) // self.pool_size, self.pool_size, channels))
        logits = self.logits(x)
        if pad:
            padded = np.arange(length + pad).reshape(1, -1, self.pool_size, 1) >= length
            logits = ops.where(padded, np.finfo("float32").min, logits)
        return ops.sum(x * ops.softmax(logits, axis=-2), axis=-2)

    def compute_output_shape(self, input_shape):
        batch, length, channels = input_shape
        return (batch, -(-length // self.pool_size), channels)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "per_channel": self.per_channel,
            "init_gain": self.init_gain,
        }


@register
class AdaptivePool1D(keras.layers.Layer):
    """PyTorch's adaptive pooling: output bin i averages or maxes input positions
    floor(i L / n) to ceil((i+1) L / n).

    Args:
        out_length: output bins n.
        pool_type: avg or max.

    Input shape: `[batch, length, channels]`. Output shape: `[batch, out_length, channels]`.
    """

    def __init__(self, out_length, pool_type="avg", **kwargs):
        super().__init__(**kwargs)
        if pool_type not in ("avg", "max"):
            raise ValueError(f"pool_type must be avg or max, got {pool_type!r}")
        self.out_length = out_length
        self.pool_type = pool_type

    def build(self, input_shape):
        length, n = input_shape[1], self.out_length
        starts = np.arange(n) * length // n
        ends = -(-(np.arange(n) + 1) * length // n)
        offsets = starts[:, None] + np.arange((ends - starts).max())[None, :]
        inside = offsets < ends[:, None]
        self.index = np.minimum(offsets, ends[:, None] - 1)  # [n, window]; short windows repeat
        self.window_weights = (inside / inside.sum(1, keepdims=True)).astype("float32")[..., None]

    def call(self, x):
        windows = ops.take(x, self.index, axis=1)  # [batch, n, window, channels]
        if self.pool_type == "max":
            return ops.max(windows, axis=2)
        return ops.sum(windows * ops.cast(self.window_weights, x.dtype), axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.out_length, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "out_length": self.out_length, "pool_type": self.pool_type}


@register
class UnitDense(keras.layers.Layer):
    """One dense map per channel ("unit") along the length axis (ExplaiNN's grouped
    layers): each unit's profile to its own `out_length` values. Kernels start He-normal over
    each unit's own `length` inputs.

    Args:
        out_length: output positions per unit.

    Input shape: `[batch, length, units]`. Output shape: `[batch, out_length, units]`.
    """

    def __init__(self, out_length, **kwargs):
        super().__init__(**kwargs)
        self.out_length = out_length

    def build(self, input_shape):
        length, units = input_shape[1], input_shape[2]
        # Keras counts fan-in of a [units, length, out] kernel as units * length: scale by units
        init = keras.initializers.VarianceScaling(2.0 * units, "fan_in", "truncated_normal")
        self.kernel = self.add_weight(
            name="kernel", shape=(units, length, self.out_length), initializer=init
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.out_length, units), initializer="zeros"
        )

    def call(self, x):
        out = ops.matmul(ops.transpose(x, (2, 0, 1)), self.kernel)  # [units, batch, out]
        return ops.transpose(out, (1, 2, 0)) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.out_length, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "out_length": self.out_length}


@register
class SqueezeExcite(keras.layers.Layer):
    """Squeeze-excitation: gate channels by a bottleneck MLP of their length-wise mean.

    The input is first activated; with a batch `norm_type` the excitation is batch-normalised
    (gamma starts at zero, as in Basenji); it then multiplies the input through a sigmoid, or is
    added to it (`additive`).

    Args:
        activation: activation of the input and of the bottleneck.
        additive: add the excitation instead of gating with it.
        bottleneck_ratio: the bottleneck has `channels // bottleneck_ratio` units.
        norm_type: batch, batch-sync or None, for the excitation.
        bn_momentum: batch-norm momentum.

    Input shape: `[batch, length, channels]`. Output shape: the input's.
    """

    def __init__(
        self,
        activation="relu",
        additive=False,
        bottleneck_ratio=8,
        norm_type=None,
        bn_momentum=0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.activation = activation
        self.additive = additive
        self.bottleneck_ratio = bottleneck_ratio
        self.norm_type = norm_type
        self.bn_momentum = bn_momentum
        self.act = Activate(activation)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.dense1 = keras.layers.Dense(channels // self.bottleneck_ratio, activation="relu")
        self.dense2 = keras.layers.Dense(channels)
        self.dense1.build((None, channels))
        self.dense2.build((None, channels // self.bottleneck_ratio))
        batch = self.norm_type in ("batch", "batch-sync")
        self.norm = normalization(self.norm_type if batch else None, self.bn_momentum, "zeros")
        if self.norm is not None:
            self.norm.build((None, channels))

    def call(self, x, training=None):
        x = self.act(x)
        excite = self.dense2(self.dense1(ops.mean(x, axis=1)))
        if self.norm is not None:
            excite = self.norm(excite, training=training)
        excite = ops.expand_dims(excite, 1)
        return x + excite if self.additive else x * ops.sigmoid(excite)

    def get_config(self):
        return {
            **super().get_config(),
            "activation": self.activation,
            "additive": self.additive,
            "bottleneck_ratio": self.bottleneck_ratio,
            "norm_type": self.norm_type,
            "bn_momentum": self.bn_momentum,
        }


def normalization(norm_type, bn_momentum=0.99, gamma=None, epsilon=1e-3):
    """A fresh normalisation layer for `norm_type` (batch, batch-sync, layer) or None."""
    gamma = gamma or "ones"
    if norm_type in ("batch", "batch-sync"):
        return keras.layers.BatchNormalization(
            momentum=bn_momentum, epsilon=epsilon, gamma_initializer=gamma,
            synchronized=norm_type == "batch-sync",
        )
    if norm_type == "layer":
        return keras.layers.LayerNormalization(epsilon=epsilon, gamma_initializer=gamma)
    return None


