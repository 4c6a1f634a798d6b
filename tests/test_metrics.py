"""Streaming metrics and numpy metrics against scipy and hand-written references."""

import keras
import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata

from seqnn.model.metrics import (
    AUPRC,
    AUROC,
    R2,
    PearsonR,
    auprc_np,
    auroc_np,
    pearsonr_np,
    r2_np,
)

T = 3
rng = np.random.default_rng(1)
Y_TRUE = rng.gamma(2.0, 1.0, (6, 20, T)).astype("float32")
Y_PRED = (Y_TRUE * [1.0, 0.5, 0.0] + rng.gamma(2.0, 1.0, (6, 20, T))).astype("float32")
LABELS = (rng.random((6, 20, T)) < [0.1, 0.3, 0.5]).astype("float32")
SCORES = np.clip(0.25 * LABELS + rng.random((6, 20, T)), 0, 1).astype("float32")


def flat(x):
    return np.asarray(x, np.float64).reshape(-1, T)


def streamed(metric, y_true, y_pred, sample_weight=None, batch=2):
    """Metric result after feeding the arrays ``batch`` sequences at a time."""
    for i in range(0, len(y_true), batch):
        weight = None if sample_weight is None else sample_weight[i : i + batch]
        metric.update_state(y_true[i : i + batch], y_pred[i : i + batch], weight)
    return keras.ops.convert_to_numpy(metric.result())


def scipy_pearsonr(y_true, y_pred):
    return np.array(
        [pearsonr(t, p)[0] for t, p in zip(flat(y_true).T, flat(y_pred).T, strict=True)]
    )


def hand_r2(y_true, y_pred):
    t, p = flat(y_true), flat(y_pred)
    with np.errstate(divide="ignore"):
        return 1 - ((t - p) ** 2).sum(0) / ((t - t.mean(0)) ** 2).sum(0)


def mann_whitney_auroc(y_true, y_pred):
    out = []
    for t, p in zip(flat(y_true).T, flat(y_pred).T, strict=True):
        n_pos, n_neg = t.sum(), (1 - t).sum()
        out.append((rankdata(p)[t == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return np.array(out)


def hand_average_precision(y_true, y_pred):
    """Mean over positives of the precision among the scores at or above theirs (no ties)."""
    out = []
    for t, p in zip(flat(y_true).T, flat(y_pred).T, strict=True):
        hits = t[np.argsort(-p)]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        out.append(precision[hits == 1].mean())
    return np.array(out)


def test_pearsonr_streams_to_scipy():
    expected = scipy_pearsonr(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(streamed(PearsonR(T, summarize=False), Y_TRUE, Y_PRED), expected)
    assert streamed(PearsonR(T), Y_TRUE, Y_PRED) == pytest.approx(expected.mean())
    np.testing.assert_allclose(pearsonr_np(Y_TRUE, Y_PRED), expected)


def test_r2_streams_to_hand_computed():
    expected = hand_r2(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(streamed(R2(T, summarize=False), Y_TRUE, Y_PRED), expected)
    assert streamed(R2(T), Y_TRUE, Y_PRED) == pytest.approx(expected.mean())
    np.testing.assert_allclose(r2_np(Y_TRUE, Y_PRED), expected)


def test_sample_weight_masks_positions():
    mask = (rng.random((6, 20)) < 0.7).astype("float32")
    keep = mask.astype(bool)
    got = streamed(PearsonR(T, summarize=False), Y_TRUE, Y_PRED, sample_weight=mask)
    np.testing.assert_allclose(got, scipy_pearsonr(Y_TRUE[keep], Y_PRED[keep]))
    got = streamed(R2(T, summarize=False), Y_TRUE, Y_PRED, sample_weight=mask)
    np.testing.assert_allclose(got, hand_r2(Y_TRUE[keep], Y_PRED[keep]))


def test_constant_tracks():
    y_true, y_pred = Y_TRUE.copy(), Y_PRED.copy()
    y_true[..., 0] = 0.1  # constant targets: undefined
    y_pred[..., 1] = 2.3  # constant predictions: no correlation
    expected_r = [np.nan, 0.0, scipy_pearsonr(Y_TRUE, Y_PRED)[2]]
    for got in (
        streamed(PearsonR(T, summarize=False), y_true, y_pred),
        pearsonr_np(y_true, y_pred),
    ):
        np.testing.assert_allclose(got, expected_r)
    assert streamed(PearsonR(T), y_true, y_pred) == pytest.approx(expected_r[2] / 2)
    expected_r2 = hand_r2(y_true, y_pred)[1:]
    for got in (streamed(R2(T, summarize=False), y_true, y_pred), r2_np(y_true, y_pred)):
        assert np.isnan(got[0])
        np.testing.assert_allclose(got[1:], expected_r2)


def test_numpy_auroc_auprc_against_references():
    ties = np.round(SCORES, 1)
    np.testing.assert_allclose(auroc_np(LABELS, ties), mann_whitney_auroc(LABELS, ties))
    np.testing.assert_allclose(auroc_np(LABELS, SCORES), mann_whitney_auroc(LABELS, SCORES))
    np.testing.assert_allclose(auprc_np(LABELS, SCORES), hand_average_precision(LABELS, SCORES))


@pytest.mark.parametrize("cls, exact", [(AUROC, auroc_np), (AUPRC, auprc_np)])
def test_binned_auc_streams_to_exact_value_of_binned_scores(cls, exact):
    got = streamed(cls(T, num_bins=50, summarize=False), LABELS, SCORES)
    binned = np.minimum(np.floor(SCORES.astype(np.float64) * 50), 49)  # 1.0 is in the top bin
    np.testing.assert_allclose(got, exact(LABELS, binned), rtol=1e-12)
    # Scores on a 0.01 grid never share a bin of width 0.001: the default bins are exact.
    grid = np.round(SCORES, 2)
    np.testing.assert_allclose(streamed(cls(T, summarize=False), LABELS, grid), exact(LABELS, grid))


@pytest.mark.parametrize("cls, exact, atol", [(AUROC, auroc_np, 2e-3), (AUPRC, auprc_np, 5e-3)])
def test_binned_auc_approximates_exact_value(cls, exact, atol):
    np.testing.assert_allclose(
        streamed(cls(T, summarize=False), LABELS, SCORES), exact(LABELS, SCORES), atol=atol
    )
    assert streamed(cls(T), LABELS, SCORES) == pytest.approx(exact(LABELS, SCORES).mean(), abs=atol)


def test_auc_of_track_without_positives_is_nan_and_skipped():
    labels = LABELS.copy()
    labels[..., 0] = 0
    for cls, exact in ((AUROC, auroc_np), (AUPRC, auprc_np)):
        got = streamed(cls(T, summarize=False), labels, SCORES)
        assert np.isnan(got[0]) and np.isnan(exact(labels, SCORES)[0])
        assert streamed(cls(T), labels, SCORES) == pytest.approx(np.mean(got[1:]))


@pytest.mark.parametrize("cls", [PearsonR, R2, AUROC, AUPRC])
def test_float16_predictions_and_reset(cls):
    metric = cls(T, summarize=False)
    got = streamed(metric, LABELS, keras.ops.cast(SCORES, "float16"))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, streamed(cls(T, summarize=False), LABELS, SCORES), atol=2e-3)
    metric.reset_state()
    assert all(not np.any(v.numpy()) for v in metric.variables)


@pytest.mark.parametrize(
    "metric",
    [PearsonR(T, summarize=False), R2(T, name="r2_val"), AUROC(T, num_bins=64), AUPRC(T)],
    ids=lambda m: m.name,
)
def test_config_and_serialization_round_trip(metric):
    config = metric.get_config()
    assert type(metric).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is type(metric)
    assert restored.get_config() == config
    np.testing.assert_array_equal(
        streamed(restored, LABELS, SCORES), streamed(metric, LABELS, SCORES)
    )


def test_compiled_xla_evaluate_matches_eager():
    inputs = keras.Input((20, 2))
    model = keras.Model(inputs, keras.layers.Dense(T, activation="sigmoid")(inputs))
    metrics = [PearsonR(T), R2(T), AUROC(T), AUPRC(T)]
    model.compile(loss="binary_crossentropy", metrics=metrics, jit_compile=True)
    x = rng.random((6, 20, 2)).astype("float32")
    logs = model.evaluate(x, LABELS, batch_size=2, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    for metric in metrics:
        assert logs[metric.name] == pytest.approx(streamed(type(metric)(T), LABELS, pred))
