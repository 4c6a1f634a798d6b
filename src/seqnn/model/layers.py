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
    """Elementwise activation by name; `gelu` is the tanh approximation, as in baskerville;
    `gelu_sigmoid` is `x sigmoid(1.702 x)` (Basenji, enformer-pytorch)."""

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
    """Multiply each channel by a learned scalar (zero-initialised: residual branches start off)."""

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
    """Pool `[batch, length, channels]` to `[batch, out_length, channels]` (PyTorch's adaptive
    pooling): output bin i averages or maxes input positions floor(i L / n) to ceil((i+1) L / n).
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
class UnfoldConv1D(keras.layers.Conv1D):
    """`Conv1D` computed as one matrix product over unfolded windows `[B, L, kernel x channels]`.

    Same weights, options and outputs as `Conv1D`; on few input channels (one-hot DNA) the
    convolution kernels use a CPU poorly and this trains the first layer about 2x faster. Stride 1
    and dilation 1 only; lengths unknown when the model is built fall back to `Conv1D`.
    """

    def call(self, inputs):
        size, length = self.kernel_size[0], inputs.shape[1]
        if length is None or self.strides != (1,) or self.dilation_rate != (1,):
            return super().call(inputs)
        if self.padding == "same":
            left = (size - 1) // 2
            inputs = ops.pad(inputs, ((0, 0), (left, size - 1 - left), (0, 0)))
        out_length = inputs.shape[1] - size + 1
        windows = [inputs[:, i : i + out_length] for i in range(size)]
        kernel = ops.reshape(self.kernel, (-1, self.filters))
        if self.use_bias:  # a column of ones: the bias is one more row of the product
            windows.append(ops.ones_like(windows[0][..., :1]))
            kernel = ops.concatenate([kernel, self.bias[None]], axis=0)
        windows = ops.concatenate(windows, axis=-1)
        out = ops.matmul(ops.reshape(windows, (-1, windows.shape[-1])), kernel)
        out = ops.reshape(out, (-1, out_length, self.filters))
        return out if self.activation is None else self.activation(out)


def _tap_filter_grad(x, dy, size):
    """Gradient of a stride-1 convolution's kernel `[size, C, F]` from its padded input `x`
    `[B, L_out + size - 1, C]` and output gradient `dy` `[B, L_out, F]`: one matrix product
    per tap, `x` shifted by the tap's offset."""
    length, channels = dy.shape[1], x.shape[-1]
    dy = ops.reshape(dy, (-1, dy.shape[-1]))
    return ops.stack([
        ops.matmul(ops.transpose(ops.reshape(x[:, i : i + length], (-1, channels))), dy)
        for i in range(size)
    ])


@register
class TapConv1D(keras.layers.Conv1D):
    """`Conv1D` whose kernel gradient is one matrix product per tap.

    Same weights, options, outputs and input gradients as `Conv1D` (the convolution and its
    transpose run as before); on a CPU the convolution library's kernel gradient of a long 1D
    convolution runs at a fifth of the matmul rate, and this computes it 2-3x faster. Stride 1,
    dilation 1 (TensorFlow's CPU kernels have no dilated transpose), one group, known lengths
    and no GPU; otherwise it is `Conv1D`.
    """

    def call(self, inputs):
        size, length, padding = self.kernel_size[0], inputs.shape[1], self.padding
        if (length is None or self.strides != (1,) or self.dilation_rate != (1,)
                or self.groups != 1 or padding not in ("same", "valid")
                or keras.distribution.list_devices("gpu")):
            return super().call(inputs)

        @ops.custom_gradient
        def conv(x, kernel):
            def grad(*args, upstream=None):
                dy = args[0] if upstream is None else upstream
                x_pad = x
                if padding == "same":
                    x_pad = ops.pad(x, ((0, 0), ((size - 1) // 2, size // 2), (0, 0)))
                return (ops.conv_transpose(dy, kernel, padding=padding),
                        _tap_filter_grad(x_pad, dy, size))

            return ops.conv(x, kernel, padding=padding), grad

        out = conv(inputs, ops.cast(self.kernel, self.compute_dtype))  # a tensor, not a variable
        if self.use_bias:
            out = out + self.bias
        return out if self.activation is None else self.activation(out)


@register
class UnitDense(keras.layers.Layer):
    """One dense map per channel ("unit") along the length axis (ExplaiNN's grouped layers):
    `[batch, length, units] -> [batch, out_length, units]`, each unit's profile to its own
    `out_length` values. Kernels start He-normal over each unit's own `length` inputs.
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


POSITION_BASES = ("central_mask", "enformer", "enformer_tf")


def enformer_position_features(length, num_features, gamma_over="features"):
    """Enformer's relative position basis, `[2 * length - 1, num_features]` float32 (numpy).

    A sixth of the features each: exponential decays (half-lives 2^3 .. `length`), central
    masks (windows of width 2^k - 1) and gamma densities (means `length / n` .. `length`),
    then the same times the sign of the distance. Each gamma density is normalised by its
    maximum over the features at each distance (`gamma_over="features"`, enformer-pytorch) or
    over the distances (`"distances"`, the TensorFlow Enformer: the port's `use_tf_gamma`).
    Evaluated in float32 in the port's order of operations.
    """
    if num_features % 6:
        raise ValueError(f"enformer position basis: {num_features} features is not a multiple of 6")
    n, f32 = num_features // 6, np.float32
    distance = np.abs(np.arange(-length + 1, length, dtype=f32))[:, None]
    half_life = np.power(f32(2), np.linspace(3, math.log(length) / math.log(2.0), n, dtype=f32))
    exponential = np.exp(f32(-math.log(2)) / half_life * distance)
    central = (np.power(f32(2), np.arange(1, n + 1, dtype=f32)) - 1 > distance).astype(f32)
    stddev = length / (2 * n)
    mean = np.linspace(length / n, length, n, dtype=f32)
    concentration, rate = (mean / f32(stddev)) ** 2, mean / f32(stddev**2)
    log_norm = np.array([math.lgamma(c) for c in concentration], f32) - concentration * np.log(rate)
    with np.errstate(divide="ignore"):  # log(0): the density is 0 at distance 0
        log_density = (concentration - 1) * np.log(distance) - rate * distance
    gamma = np.exp(log_density - log_norm) + f32(1e-8)
    gamma /= gamma.max(axis=1 if gamma_over == "features" else 0, keepdims=True)
    basis = np.concatenate([exponential, central, gamma], axis=-1)
    sign = np.sign(np.arange(-length + 1, length, dtype=f32))[:, None]
    return np.concatenate([basis, sign * basis], axis=-1)


def positional_features(length, num_features):
    """Baskerville's central-mask relative position basis: `[2 * length - 1, num_features]`.

    Half the features are symmetric windows of exponentially growing width around distance 0;
    the other half are the same windows times the sign of the distance.
    """
    num_basis = num_features // 2
    distances = ops.arange(-length + 1, length, dtype="float32")
    rate = math.exp(math.log(length + 1) / num_basis)
    widths = ops.power(rate, ops.arange(1, num_basis + 1, dtype="float32")) - 1.0
    mask = ops.cast(widths[None, :] > ops.abs(distances)[:, None], "float32")
    return ops.concatenate([mask, ops.sign(distances)[:, None] * mask], axis=-1)


def relative_shift(x, keep=None):
    """Turn logits over relative distance `[..., R, W]` into logits over key `[..., R, keep]`.

    Output `[..., i, j]` is input `[..., i, j - i + R - 1]` (TransformerXL); for `R` queries
    against all `T` keys `W = T + R - 1` and `keep = T` (default `W - R + 1`). Flattened, that
    is element `R - 1 + i (W - 1) + j`: rows of `W - 1` from offset `R - 1`, of which the first
    `keep` are kept (one reshape, two slices whose gradients are pads, no padding forward).
    """
    heads, rows, width = x.shape[1], x.shape[2], x.shape[3]
    keep = width - rows + 1 if keep is None else keep
    if rows == 1:
        return x[..., :keep]
    x = ops.reshape(x, (-1, heads, rows * width))
    x = ops.slice(x, (0, 0, rows - 1), (ops.shape(x)[0], heads, rows * (width - 1)))
    x = ops.reshape(x, (-1, heads, rows, width - 1))
    return ops.slice(x, (0, 0, 0, 0), (ops.shape(x)[0], heads, rows, keep))


QUERY_CHUNK = 128  # queries per attention block (64-128 fastest of 32-256 on CPU at 1,024)
DROPOUT_BITS = 15  # attention-weight dropout: two 15-bit uniforms from each random int32


def keep_mask(shape, rate, seed):
    """A mask keeping each entry of `shape` with probability `1 - rate` (rounded to 2^-15), and
    that probability. Each random int32 serves two entries, halving the random-number work that
    dominated dropout of attention weights on a CPU."""
    one = 1 << DROPOUT_BITS
    cut = round(rate * one)
    width = shape[-1]
    bits = keras.random.randint((*shape[:-1], -(-width // 2)), 0, one * one, seed=seed)
    uniform = ops.concatenate([ops.bitwise_and(bits, one - 1),
                               ops.right_shift(bits, DROPOUT_BITS)], axis=-1)
    return uniform[..., :width] >= cut, 1 - cut / one


@register
class MultiheadAttention(keras.layers.Layer):
    """Multi-head self-attention with relative positional encodings (Enformer / baskerville).

    Logits are `(q + r_w_bias)·k` plus `(q + r_r_bias)·r` where `r` projects the positional
    basis of each relative distance. Query, key, value and positional projections have no bias;
    the output projection starts at zero so each block starts as the identity. Queries are
    attended `query_chunk` at a time (None: all at once); the result does not depend on it.
    `position_basis` is `central_mask` (baskerville's `positional_features`) or Enformer's
    three bases (`enformer_position_features`: `enformer` as enformer-pytorch, `enformer_tf`
    with TensorFlow Enformer's gamma normalisation).
    """

    def __init__(
        self,
        value_size,
        key_size,
        heads,
        num_position_features=None,
        attention_dropout=0.0,
        position_dropout=0.0,
        content_position_bias=True,
        initializer="he_normal",
        l2_scale=0.0,
        seed=None,
        query_chunk=QUERY_CHUNK,
        position_basis="central_mask",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position_basis not in POSITION_BASES:
            raise ValueError(f"position_basis must be one of {POSITION_BASES}, got "
                             f"{position_basis!r}")
        self.position_basis = position_basis
        self.query_chunk = query_chunk
        self.value_size = value_size
        self.key_size = key_size
        self.heads = heads
        if num_position_features is None:
            num_position_features = (value_size // 2) * 2
        self.num_position_features = num_position_features
        self.attention_dropout = attention_dropout
        self.position_dropout = position_dropout
        self.content_position_bias = content_position_bias
        self.initializer = initializer
        self.l2_scale = l2_scale
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        reg = keras.regularizers.L2(l2_scale) if l2_scale else None

        def dense(units, name, **kw):
            kw.setdefault("kernel_initializer", initializer)
            return keras.layers.Dense(units, name=name, kernel_regularizer=reg, **kw)

        self.q_layer = dense(key_size * heads, "q_layer", use_bias=False)
        self.k_layer = dense(key_size * heads, "k_layer", use_bias=False)
        self.v_layer = dense(value_size * heads, "v_layer", use_bias=False)
        self.embedding_layer = dense(
            value_size * heads, "embedding_layer", kernel_initializer="zeros"
        )
        self.r_k_layer = dense(key_size * heads, "r_k_layer", use_bias=False)

    def build(self, input_shape):
        channels = input_shape[-1]
        for layer in (self.q_layer, self.k_layer, self.v_layer):
            layer.build((None, None, channels))
        self.embedding_layer.build((None, None, self.value_size * self.heads))
        self.r_k_layer.build((None, None, self.num_position_features))
        shape = (1, self.heads, 1, self.key_size)
        self.r_w_bias = self.add_weight(name="r_w_bias", shape=shape, initializer=self.initializer)
        self.r_r_bias = self.add_weight(name="r_r_bias", shape=shape, initializer=self.initializer)

    def _split_heads(self, x):
        length = x.shape[1]
        x = ops.reshape(x, (-1, length, self.heads, x.shape[-1] // self.heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def _dropout(self, x, rate, training):
        if training and rate > 0:
            return keras.random.dropout(x, rate, seed=self.seed_generator)
        return x

    def call(self, x, training=None):
        length = x.shape[1]
        q = self._split_heads(self.q_layer(x)) * self.key_size**-0.5
        k = self._split_heads(self.k_layer(x))
        v = self._split_heads(self.v_layer(x))
        r_k = None
        if self.num_position_features:
            positions = self._position_features(length)
            positions = self._dropout(positions, self.position_dropout, training)
            r_k = self._split_heads(self.r_k_layer(positions[None]))
        chunk = self.query_chunk or length
        out = ops.concatenate([
            self._attend(q, k, v, r_k, start, min(chunk, length - start), training)
            for start in range(0, length, chunk)
        ], axis=2)
        out = ops.transpose(out, (0, 2, 1, 3))
        return self.embedding_layer(ops.reshape(out, (-1, length, self.value_size * self.heads)))

    def _position_features(self, length):
        if self.position_basis == "central_mask":
            return positional_features(length, self.num_position_features)
        over = "features" if self.position_basis == "enformer" else "distances"
        return ops.convert_to_tensor(
            enformer_position_features(length, self.num_position_features, over)
        )

    def _attend(self, q, k, v, r_k, start, rows, training):
        """Attention of queries `start .. start + rows - 1` to every key: `[B, H, rows, value]`.

        Those queries see relative distances `-(start + rows - 1) .. length - 1 - start`, a window
        of `length + rows - 1` rows of the positional projections, so logits and their gradients
        stay `rows x length` (cache-sized blocks; no `length x (2 length - 1)` tensor).
        """
        length = k.shape[2]
        batch = ops.shape(q)[0]
        if rows < length:
            q = ops.slice(q, (0, 0, start, 0), (batch, self.heads, rows, self.key_size))
        logits = ops.matmul(q + self.r_w_bias, ops.swapaxes(k, -1, -2))
        if r_k is not None:
            width = length + rows - 1
            r_k = ops.slice(r_k, (0, 0, length - rows - start, 0), (1, self.heads, width,
                                                                     self.key_size))
            if self.content_position_bias:
                rel = ops.matmul(q + self.r_r_bias, ops.swapaxes(r_k, -1, -2))
            else:
                rel = ops.matmul(self.r_r_bias, ops.swapaxes(r_k, -1, -2))
                rel = ops.broadcast_to(rel, (1, self.heads, rows, width))
            logits = logits + relative_shift(rel, length)
        weights = ops.softmax(logits, axis=-1)
        if not (training and self.attention_dropout > 0):
            return ops.matmul(weights, v)
        keep, p = keep_mask(ops.shape(weights), self.attention_dropout, self.seed_generator)
        return ops.matmul(ops.where(keep, weights, 0), v) / p  # scaled on the smaller side

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.value_size * self.heads)

    def get_config(self):
        return {
            **super().get_config(),
            "value_size": self.value_size,
            "key_size": self.key_size,
            "heads": self.heads,
            "num_position_features": self.num_position_features,
            "attention_dropout": self.attention_dropout,
            "position_dropout": self.position_dropout,
            "content_position_bias": self.content_position_bias,
            "initializer": self.initializer,
            "l2_scale": self.l2_scale,
            "seed": self.seed,
            "query_chunk": self.query_chunk,
            "position_basis": self.position_basis,
        }


def reverse_complement(seq):
    """Reverse complement of one-hot `[batch, length, 4]` (ACGT order): flip both axes."""
    return ops.flip(ops.flip(seq, axis=1), axis=2)


@register
class StochasticReverseComplement(keras.layers.Layer):
    """In training, reverse-complement each sequence with probability 1/2.

    Returns `(sequence, flag)` with `flag` a `[batch]` bool telling which sequences were
    reversed; at inference the sequence passes unchanged and every flag is False.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, seq, training=None):
        if not training:
            return seq, ops.zeros_like(seq[:, 0, 0], dtype="bool")
        flag = keras.random.uniform(ops.shape(seq)[:1], seed=self.seed_generator) < 0.5
        return ops.where(flag[:, None, None], reverse_complement(seq), seq), flag

    def compute_output_spec(self, seq, training=None):
        return (
            keras.KerasTensor(seq.shape, dtype=seq.dtype),
            keras.KerasTensor(seq.shape[:1], dtype="bool"),
        )

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@register
class StochasticShift(keras.layers.Layer):
    """In training, shift each sequence by a random offset in `[-shift_max, shift_max]`.

    Positions shifted in are zero (an N in one-hot); at inference the sequence passes unchanged.
    """

    def __init__(self, shift_max=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.shift_max = shift_max
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, seq, training=None):
        if not training or self.shift_max == 0:
            return seq
        batch, length, depth = ops.shape(seq)[0], seq.shape[1], seq.shape[2]
        pad = self.shift_max
        shift = keras.random.randint((batch,), -pad, pad + 1, seed=self.seed_generator,
                                     dtype="int32")
        # output [b, t] = input [b, t - shift[b]]: rows of the N-padded batch, flattened
        padded = ops.reshape(ops.pad(seq, ((0, 0), (pad, pad), (0, 0))), (-1, depth))
        first = ops.arange(batch, dtype="int32") * (length + 2 * pad) + pad - shift
        rows = ops.reshape(first[:, None] + ops.arange(length, dtype="int32")[None, :], (-1,))
        return ops.reshape(ops.take(padded, rows, axis=0), (batch, length, depth))

    def get_config(self):
        return {**super().get_config(), "shift_max": self.shift_max, "seed": self.seed}


@register
class SwitchReverse(keras.layers.Layer):
    """Undo reverse complementing on predictions `[batch, length, tracks]`.

    Where the flag is set, flip the length axis and take track `strand_pair[t]` for track `t`,
    so a minus-strand track returns to its plus-strand partner's column.
    """

    def __init__(self, strand_pair=None, **kwargs):
        super().__init__(**kwargs)
        self.strand_pair = None if strand_pair is None else [int(t) for t in strand_pair]

    def call(self, inputs):
        x, flag = inputs
        rev = ops.flip(x, axis=1)
        if self.strand_pair is not None:
            rev = ops.take(rev, self.strand_pair, axis=-1)
        return ops.where(flag[:, None, None], rev, x)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "strand_pair": self.strand_pair}
