"""Training losses for coverage tracks: ``y_true``, ``y_pred`` are ``[batch, length, tracks]``.

Losses compute in their ``dtype``, float32 by default even under a ``mixed_float16`` policy
(Keras casts both inputs first). ``call`` returns unreduced values and ``__call__`` their mean:
over every batch x length x track value, every batch x track value for ``poisson_mn``, or
every batch x length value for ``poisson_kl`` and ``mse_udot`` (their terms span the tracks).
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


@keras.saving.register_keras_serializable(package="seqnn")
class PoissonKL(keras.losses.Loss):
    """Poisson plus the Kullback-Leibler divergence of the tracks' profile at each position
    (Basenji's ``poisson_kl``); ``call`` returns ``[batch, length]``::

        mean_t poisson(y_true, y_pred) + kl_weight * sum_t q_t log(q_t / p_t)

    with q, p = (y + epsilon) normalised over the tracks, for the target and the prediction.
    """

    def __init__(self, kl_weight=1.0, epsilon=1e-3, name="poisson_kl", **kwargs):
        super().__init__(name=name, **kwargs)
        self.kl_weight = kl_weight
        self.epsilon = epsilon

    def call(self, y_true, y_pred):
        poisson = ops.mean(_poisson(y_true, y_pred, 1e-7), axis=-1)
        q, p = y_true + self.epsilon, y_pred + self.epsilon
        log_q = ops.log(q) - ops.log(ops.sum(q, axis=-1, keepdims=True))
        log_p = ops.log(p) - ops.log(ops.sum(p, axis=-1, keepdims=True))
        return poisson + self.kl_weight * ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)

    def get_config(self):
        return {**super().get_config(), "kl_weight": self.kl_weight, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="seqnn")
class MeanSquaredErrorUDot(keras.losses.Loss):
    """Squared error minus the product of target and prediction centred over the tracks
    (Basenji's ``mse_udot``): it rewards getting each position's profile across tracks right;
    ``call`` returns ``[batch, length]``::

        mean_t (y_pred - y_true)**2 - udot_weight * mean_t (y_true - mean_t y_true)
                                                         * (y_pred - mean_t y_pred)
    """

    def __init__(self, udot_weight=1.0, name="mse_udot", **kwargs):
        super().__init__(name=name, **kwargs)
        self.udot_weight = udot_weight

    def call(self, y_true, y_pred):
        t = y_true - ops.mean(y_true, axis=-1, keepdims=True)
        p = y_pred - ops.mean(y_pred, axis=-1, keepdims=True)
        mse = ops.mean(ops.square(y_pred - y_true), axis=-1)
        return mse - self.udot_weight * ops.mean(t * p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "udot_weight": self.udot_weight}


LOSSES = {
    "poisson": Poisson,
    "poisson_mn": PoissonMultinomial,
    "poisson_kl": PoissonKL,
    "mse": MeanSquaredError,
    "mse_udot": MeanSquaredErrorUDot,
    "bce": BinaryCrossentropy,
}

# the train-block keys each loss takes
LOSS_KEYS = {"poisson_mn": ("total_weight",), "poisson_kl": ("kl_weight",),
             "mse_udot": ("udot_weight",)}


def get_loss(name: str, **kwargs) -> keras.losses.Loss:
    """The loss named by params ``train.loss``, built with ``kwargs`` (e.g. ``total_weight``)."""
    if name not in LOSSES:
        raise SeqnnError(f"unknown loss {name!r} in train.loss; use one of: {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)
