"""Training-time augmentation layers: random reverse complement and shift, and the switch
that maps a reverse-complemented prediction back.

Registered for `.keras` round-trips, written with `keras.ops`; sequences are `[batch, length, 4]`
one-hot (A, C, G, T).
"""

import keras
from keras import ops

register = keras.saving.register_keras_serializable(package="seqnn")


def reverse_complement(seq):
    """Reverse complement of one-hot `[batch, length, 4]` (ACGT order): flip both axes."""
    return ops.flip(ops.flip(seq, axis=1), axis=2)


@register
class StochasticReverseComplement(keras.layers.Layer):
    """In training, reverse-complement each sequence with probability 1/2.

    At inference the sequence passes unchanged and every flag is False.

    Args:
        seed: seed of the draws.

    Input shape: `[batch, length, 4]` one-hot. Output: `(sequence, flag)`, the sequence as the
    input and `flag` a `[batch]` bool telling which sequences were reversed.
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

    Args:
        shift_max: largest shift in bp.
        seed: seed of the draws.

    Input shape: `[batch, length, 4]`. Output shape: the input's.
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
    """Undo reverse complementing on predictions.

    Where the flag is set, flip the length axis and take track `strand_pair[t]` for track `t`,
    so a minus-strand track returns to its plus-strand partner's column.

    Args:
        strand_pair: per track, the index of its opposite-strand track (None: no swap).

    Input: `[predictions, flag]` with predictions `[batch, length, tracks]` and flag `[batch]`
    bool. Output shape: the predictions'.
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
