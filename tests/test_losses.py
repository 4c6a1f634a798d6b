"""Losses against numpy references, mixed precision, the factory and serialization."""

import keras
import numpy as np
import pytest

from seqnn import SeqnnError
from seqnn.model.losses import (
    LOSSES,
    BinaryCrossentropy,
    MeanSquaredError,
    MeanSquaredErrorUDot,
    Poisson,
    PoissonKL,
    PoissonMultinomial,
    get_loss,
)

EPS = 1e-7
rng = np.random.default_rng(0)
Y_TRUE = rng.poisson(3.0, (2, 6, 3)).astype("float32")
Y_PRED = rng.uniform(0.5, 5.0, (2, 6, 3)).astype("float32")
LABELS = (rng.random((2, 6, 3)) < 0.4).astype("float32")
PROBS = rng.uniform(0.05, 0.95, (2, 6, 3)).astype("float32")


def value(loss, y_true, y_pred):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


def poisson_mn_np(y, p, total_weight=1.0, eps=EPS):
    """Poisson on totals plus multinomial NLL over positions, per position, as documented."""
    s_true, s_pred = y.sum(1), p.sum(1)
    total = s_pred - s_true * np.log(s_pred + eps)
    log_p = np.log((p + eps) / (p + eps).sum(1, keepdims=True))
    return np.mean((-(y * log_p).sum(1) + total_weight * total) / y.shape[1])


def poisson_mn_baskerville_np(y, p, total_weight=1.0, eps=EPS):
    """baskerville's formula (eps on y_true and not in the normaliser), written anew."""
    s_true, s_pred = y.sum(1), p.sum(1)
    total = (s_pred - s_true * np.log(s_pred + eps)) / y.shape[1]
    multinomial = -((y + eps) * np.log((p + eps) / s_pred[:, None])).sum(1) / y.shape[1]
    return np.mean(multinomial + total_weight * total)


def test_poisson_mse_bce_match_numpy():
    y, p = Y_TRUE.astype(float), Y_PRED.astype(float)
    assert value(Poisson(), Y_TRUE, Y_PRED) == pytest.approx(np.mean(p - y * np.log(p + EPS)))
    assert value(MeanSquaredError(), Y_TRUE, Y_PRED) == pytest.approx(np.mean((p - y) ** 2))
    t, q = LABELS.astype(float), PROBS.astype(float)
    bce = np.mean(-(t * np.log(q) + (1 - t) * np.log(1 - q)))
    assert value(BinaryCrossentropy(), LABELS, PROBS) == pytest.approx(bce, rel=1e-5)
    logits = np.log(q / (1 - q)).astype("float32")
    assert value(BinaryCrossentropy(from_logits=True), LABELS, logits) == pytest.approx(
        bce, rel=1e-5
    )


def test_poisson_mn_hand_computed():
    # One sequence, one track, counts [1, 3], prediction [2, 2]: totals 4 and 4, p = [1/2, 1/2].
    # Poisson term 4 - 4 log 4, multinomial term 4 log 2, length 2:
    # w = 1: (4 log 2 + 4 - 4 log 4) / 2 = 2 - 2 log 2;  w = 0.5: (4 log 2 + 2 - 2 log 4) / 2 = 1.
    y = np.array([[[1.0], [3.0]]], "float32")
    p = np.array([[[2.0], [2.0]]], "float32")
    assert value(PoissonMultinomial(), y, p) == pytest.approx(2 - 2 * np.log(2), rel=1e-6)
    assert value(PoissonMultinomial(total_weight=0.5), y, p) == pytest.approx(1.0, rel=1e-6)
    rescaled = PoissonMultinomial(total_weight=0.5, rescale=True)
    assert value(rescaled, y, p) == pytest.approx(4 / 3, rel=1e-6)


@pytest.mark.parametrize("total_weight", [1.0, 0.2])
def test_poisson_mn_matches_numpy_and_baskerville_scale(total_weight):
    y, p = Y_TRUE.astype(float), Y_PRED.astype(float)
    loss = value(PoissonMultinomial(total_weight=total_weight), Y_TRUE, Y_PRED)
    assert loss == pytest.approx(poisson_mn_np(y, p, total_weight), rel=1e-5)
    assert loss == pytest.approx(poisson_mn_baskerville_np(y, p, total_weight), rel=1e-4)


def poisson_kl_np(y, p, kl_weight, eps=1e-3):
    """Mean over positions of: mean Poisson over tracks + weight x KL(q || p) of the tracks'
    profiles (y + eps, normalised over tracks)."""
    poisson = (p - y * np.log(p + EPS)).mean(-1)
    q_n = (y + eps) / (y + eps).sum(-1, keepdims=True)
    p_n = (p + eps) / (p + eps).sum(-1, keepdims=True)
    return np.mean(poisson + kl_weight * (q_n * np.log(q_n / p_n)).sum(-1))


def mse_udot_np(y, p, udot_weight):
    """Mean over positions of: mean squared error - weight x mean of the centred product."""
    yc, pc = y - y.mean(-1, keepdims=True), p - p.mean(-1, keepdims=True)
    return np.mean(((p - y) ** 2).mean(-1) - udot_weight * (yc * pc).mean(-1))


@pytest.mark.parametrize("weight", [1.0, 0.25])
def test_poisson_kl_and_mse_udot_match_numpy(weight):
    y, p = Y_TRUE.astype(float), Y_PRED.astype(float)
    assert value(get_loss("poisson_kl", kl_weight=weight), Y_TRUE, Y_PRED) == pytest.approx(
        poisson_kl_np(y, p, weight), rel=1e-5)
    assert value(get_loss("mse_udot", udot_weight=weight), Y_TRUE, Y_PRED) == pytest.approx(
        mse_udot_np(y, p, weight), rel=1e-5)
    # a prediction with the target's profile has no KL term; a perfect one loses -w var_t y
    assert value(PoissonKL(), Y_TRUE, 2 * Y_TRUE) == pytest.approx(
        value(Poisson(), Y_TRUE, 2 * Y_TRUE), abs=2e-3)
    assert value(MeanSquaredErrorUDot(udot_weight=weight), Y_TRUE, Y_TRUE) == pytest.approx(
        -weight * np.mean(y.var(-1)), rel=1e-5)


def test_poisson_mn_with_unit_weight_equals_poisson():
    # Poisson likelihood = Poisson of the total x multinomial of the positions.
    assert value(PoissonMultinomial(epsilon=0), Y_TRUE, Y_PRED) == pytest.approx(
        value(Poisson(epsilon=0), Y_TRUE, Y_PRED), rel=1e-5
    )


@pytest.fixture
def mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("name", list(LOSSES))
def test_float16_predictions_give_float32_loss(name, mixed_precision):
    y_true, y_pred = (LABELS, PROBS) if name == "bce" else (Y_TRUE, Y_PRED)
    loss = get_loss(name)
    out = loss(y_true, keras.ops.cast(y_pred, "float16"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    reference = value(loss, y_true, y_pred.astype("float16").astype("float32"))
    assert float(out) == pytest.approx(reference, rel=1e-6)


def test_get_loss_builds_with_kwargs_and_rejects_unknown_names():
    loss = get_loss("poisson_mn", total_weight=0.2, rescale=True)
    assert isinstance(loss, PoissonMultinomial)
    assert (loss.total_weight, loss.rescale) == (0.2, True)
    with pytest.raises(SeqnnError, match="unknown loss 'nll'.*poisson, poisson_mn, poisson_kl, "
                       "mse, mse_udot, bce"):
        get_loss("nll")


@pytest.mark.parametrize(
    "loss",
    [
        Poisson(epsilon=1e-6),
        PoissonMultinomial(total_weight=0.2, epsilon=1e-6, rescale=True),
        MeanSquaredError(),
        PoissonKL(kl_weight=0.5, epsilon=1e-2),
        MeanSquaredErrorUDot(udot_weight=0.3),
        BinaryCrossentropy(from_logits=True),
    ],
    ids=lambda loss: loss.name,
)
def test_config_and_serialization_round_trip(loss):
    config = loss.get_config()
    assert type(loss).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == config
    assert value(restored, LABELS, PROBS) == value(loss, LABELS, PROBS)


def test_poisson_mn_trains_a_model_with_variable_length():
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softplus")(inputs))
    model.compile(optimizer="sgd", loss=get_loss("poisson_mn", total_weight=0.2))
    x = rng.random((4, 6, 4)).astype("float32")
    loss = model.evaluate(x, Y_TRUE[[0, 1, 0, 1]], batch_size=4, verbose=0)
    expected = value(PoissonMultinomial(total_weight=0.2), Y_TRUE[[0, 1, 0, 1]], model.predict(x))
    assert loss == pytest.approx(expected, rel=1e-5)
    model.fit(x, Y_TRUE[[0, 1, 0, 1]], batch_size=2, epochs=1, verbose=0)
