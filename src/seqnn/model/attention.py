"""Multi-head self-attention with relative positions (Enformer / baskerville) and its parts.

Registered for `.keras` round-trips, written with `keras.ops`; inputs `[batch, length, channels]`.
"""

import math

import keras
import numpy as np
from keras import ops

register = keras.saving.register_keras_serializable(package="seqnn")


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
    the output projection starts at zero so each block starts as the identity.

    Args:
        value_size: value channels per head (the output has `value_size * heads` channels).
        key_size: query and key channels per head.
        heads: attention heads.
        num_position_features: size of the relative position basis (None: `value_size`
            rounded down to even).
        attention_dropout: dropout rate on the attention weights (training only).
        position_dropout: dropout rate on the position basis (training only).
        content_position_bias: positional logits depend on the query (Enformer) or not.
        initializer: initializer of the projections.
        l2_scale: L2 penalty on the projections.
        seed: seed of the dropout draws.
        query_chunk: queries attended at a time (None: all at once); the result does not
            depend on it.
        position_basis: `central_mask` (baskerville's `positional_features`) or Enformer's
            three bases (`enformer_position_features`: `enformer` as enformer-pytorch,
            `enformer_tf` with TensorFlow Enformer's gamma normalisation).

    Input shape: `[batch, length, channels]`. Output shape: `[batch, length, value_size *
    heads]`.
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
        return self.embedding_layer(
            self.attend(self.q_layer(x), self.k_layer(x), self.v_layer(x), training))

    def attend(self, q, k, v, training=None):
        """Attention of projected queries, keys and values `[B, L, heads x size]`: the heads'
        outputs `[B, L, heads x value_size]` before the output projection (adapters in
        `seqnn.model.adapters` change the projections and reuse this)."""
        length = q.shape[1]
        q = self._split_heads(q) * self.key_size**-0.5
        k = self._split_heads(k)
        v = self._split_heads(v)
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
        return ops.reshape(out, (-1, length, self.value_size * self.heads))

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
