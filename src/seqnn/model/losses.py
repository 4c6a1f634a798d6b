"""Training losses for coverage tracks: ``y_true``, ``y_pred`` are ``[batch, length, tracks]``.

Losses compute in their ``dtype``, float32 by default even under a ``mixed_float16`` policy
(Keras casts both inputs first). ``call`` returns unreduced values and ``__call__`` their mean:
over every batch x length x track value, or every batch x track value for ``poisson_mn``.
"""

import keras
from keras import ops

from seqnn import SeqnnError


def _poisson(y_true, y_pred, epsilon):
    return y_pred - y_true * ops.log(y_pred + epsilon)


@keras.saving.register_keras_serializable(package="seqnn")
class Poisson(keras.losses.Loss):
    """Poisson negative log-likelihood up to a constant: ``y_pred - y_true log(y_pred + eps)``."""

    def __init__(self, epsilon=1e-7, name="poisson", **kwargs):
        super().__init__(name=name, **kwargs)
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        return _poisson(y_true, y_pred, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="seqnn")
class PoissonMultinomial(keras.losses.Loss):
    """Basenji/baskerville Poisson-multinomial loss; ``call`` returns ``[batch, tracks]``.

    Per sequence and track, with ``s(.)`` the sum over length and
    ``p = (y_pred + eps) / s(y_pred + eps)`` the predicted distribution over positions::

        (total_weight * poisson(s(y_true), s(y_pred)) - s(y_true * log p)) / length

    i.e. a Poisson term on the track's total count plus the multinomial negative log-likelihood
    of where the counts fall, both divided by the length as baskerville does. The loss thus has
    the per-position scale of :class:`Poisson`, which it equals when ``total_weight=1``.
    ``rescale`` multiplies by ``2 / (1 + total_weight)``. baskerville also adds ``eps`` to
    ``y_true`` and leaves it out of the normaliser of ``p``; the difference is O(length x eps).
    """

    def __init__(self, total_weight=1.0, epsilon=1e-7, rescale=False, name="poisson_mn", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total_weight = total_weight
        self.epsilon = epsilon
        self.rescale = rescale

    def call(self, y_true, y_pred):
        length = ops.cast(ops.shape(y_pred)[-2], y_pred.dtype)
        total = _poisson(ops.sum(y_true, axis=-2), ops.sum(y_pred, axis=-2), self.epsilon)
        y_pred = y_pred + self.epsilon
        log_p = ops.log(y_pred) - ops.log(ops.sum(y_pred, axis=-2, keepdims=True))
        multinomial = -ops.sum(y_true * log_p, axis=-2)
        loss = (multinomial + self.total_weight * total) / length
        if self.rescale:
            loss = loss * (2 / (1 + self.total_weight))
        return loss

    def get_config(self):
        return {
            **super().get_config(),
            "total_weight": self.total_weight,
            "epsilon": self.epsilon,
            "rescale": self.rescale,
        }


@keras.saving.register_keras_serializable(package="seqnn")
class MeanSquaredError(keras.losses.Loss):
    """Squared error ``(y_pred - y_true)**2``."""

    def __init__(self, name="mse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return ops.square(y_pred - y_true)


@keras.saving.register_keras_serializable(package="seqnn")
class BinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy for targets in [0, 1].

    ``y_pred`` holds probabilities (a sigmoid head, the default; clipped to
    ``[1e-7, 1 - 1e-7]``) or, with ``from_logits=True``, logits (numerically stabler).
    """

    def __init__(self, from_logits=False, name="bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        return ops.binary_crossentropy(y_true, y_pred, from_logits=self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


LOSSES = {
    "poisson": Poisson,
    "poisson_mn": PoissonMultinomial,
    "mse": MeanSquaredError,
    "bce": BinaryCrossentropy,
}


def get_loss(name: str, **kwargs) -> keras.losses.Loss:
    """The loss named by params ``train.loss``, built with ``kwargs`` (e.g. ``total_weight``)."""
    if name not in LOSSES:
        raise SeqnnError(f"unknown loss {name!r} in train.loss; use one of: {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)
