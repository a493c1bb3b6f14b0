"""Temperature scaling, ECE, Brier score and the reliability diagram against independent oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gusa_core.calibration import (
    T_MAX,
    T_MIN,
    apply_temperature,
    brier_score,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_curve,
)


def _overconfident(n=600, c=4, scale=4.0, seed=0):
    """Logits whose softmax is over-confident: true probabilities are softmax(z / scale)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, c)) * 1.5
    true_p = np.exp(base) / np.exp(base).sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=p) for p in true_p])
    return base * scale, y


def _nll_at(z, y, t):
    return nll(apply_temperature(z, t), y)


def test_apply_temperature_is_softmax_of_scaled_logits():
    z = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    p = apply_temperature(z, 2.0)
    e = np.exp(z[0] / 2.0)
    np.testing.assert_allclose(p[0], e / e.sum())
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.isfinite(p).all()
    assert (p.argmax(1) == z.argmax(1)).all()
    with pytest.raises(ValueError):
        apply_temperature(z, 0.0)


def test_log_probabilities_give_the_same_result_as_logits():
    z, y = _overconfident(n=50)
    logp = np.log(apply_temperature(z, 1.0))
    np.testing.assert_allclose(apply_temperature(logp, 3.0), apply_temperature(z, 3.0), atol=1e-12)
    assert fit_temperature(logp, y) == pytest.approx(fit_temperature(z, y), rel=1e-6)


def test_fit_temperature_matches_scipy_minimize_scalar():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    z, y = _overconfident()
    t = fit_temperature(z, y)
    res = scipy_optimize.minimize_scalar(
        lambda log_t: _nll_at(z, y, math.exp(log_t)), bounds=(math.log(T_MIN), math.log(T_MAX)),
        method="bounded", options={"xatol": 1e-10},
    )
    assert t == pytest.approx(math.exp(res.x), rel=1e-4)
    assert _nll_at(z, y, t) <= res.fun + 1e-12
    assert t > 2.0  # the logits were inflated 4x


def test_temperature_scaling_reduces_nll_and_ece_on_overconfident_logits():
    z, y = _overconfident(n=2000, seed=1)
    z_fit, y_fit, z_test, y_test = z[:1000], y[:1000], z[1000:], y[1000:]
    t = fit_temperature(z_fit, y_fit)
    before, after = apply_temperature(z_test, 1.0), apply_temperature(z_test, t)
    assert nll(after, y_test) < nll(before, y_test) - 0.1
    assert expected_calibration_error(after, y_test) < 0.5 * expected_calibration_error(before, y_test)
    assert brier_score(after, y_test) < brier_score(before, y_test)
    assert (after.argmax(1) == before.argmax(1)).all()


def test_underconfident_logits_get_a_temperature_below_one():
    z, y = _overconfident(scale=0.3, seed=2)
    assert fit_temperature(z, y) < 1.0


def test_fit_temperature_edge_cases():
    z = np.zeros((5, 3))
    assert fit_temperature(z, [0, 1, 2, 0, 1]) == 1.0  # no information: T does not matter
    separable = np.array([[5.0, 0.0], [0.0, 5.0], [4.0, 1.0]])
    assert fit_temperature(separable, [0, 1, 0]) == T_MIN  # all right: sharpen to the bound
    wrong = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert fit_temperature(wrong, [1, 0]) == T_MAX  # all wrong: flatten to the bound
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.ones((2, 2)), [0, 2])
    with pytest.raises(ValueError, match="no samples"):
        fit_temperature(np.ones((0, 2)), [])
    with pytest.raises(ValueError, match="finite"):
        fit_temperature(np.array([[np.inf, 0.0]]), [0])


def test_ece_on_a_hand_computed_example():
    # confidences 0.9 (right), 0.8 (wrong), 0.55 (right), 0.35 (right) with 2 bins (0, .5], (.5, 1]
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.45, 0.55, 0.0], [0.35, 0.33, 0.32]])
    labels = np.array([0, 1, 1, 0])
    # bin 2: conf mean (0.9 + 0.8 + 0.55)/3 = 0.75, acc 2/3; bin 1: conf 0.35, acc 1
    expected = 3 / 4 * abs(2 / 3 - 0.75) + 1 / 4 * abs(1.0 - 0.35)
    assert expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(expected)
    conf, acc, counts = reliability_curve(probs, labels, n_bins=2)
    np.testing.assert_allclose(conf, [0.35, 0.75])
    np.testing.assert_allclose(acc, [1.0, 2 / 3])
    assert counts.tolist() == [1, 3]


def test_reliability_bins_are_right_closed_and_empty_bins_are_nan():
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    conf, acc, counts = reliability_curve(probs, [0, 0], n_bins=4)
    assert counts.tolist() == [0, 1, 0, 1]  # 0.5 lies in (0.25, 0.5], 1.0 in (0.75, 1]
    assert np.isnan(conf[0]) and np.isnan(acc[2])
    assert expected_calibration_error(probs, [0, 0], n_bins=4) == pytest.approx(0.5 * 0.5)


def test_perfectly_calibrated_bins_have_zero_ece():
    probs = np.tile([[0.75, 0.25]], (8, 1))
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)


def test_brier_score_against_sklearn_and_a_direct_formula():
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(3)
    p1 = rng.random(40)
    y = (rng.random(40) < p1).astype(int)
    probs = np.stack([1 - p1, p1], axis=1)
    assert brier_score(probs, y) == pytest.approx(2 * brier_score_loss(y, p1))
    pc = rng.dirichlet(np.ones(5), size=30)
    yc = rng.integers(0, 5, size=30)
    direct = np.mean([sum((pc[i, c] - (c == yc[i])) ** 2 for c in range(5)) for i in range(30)])
    assert brier_score(pc, yc) == pytest.approx(direct)
    assert brier_score(np.eye(3), [0, 1, 2]) == 0.0
    assert brier_score(np.eye(3), [1, 2, 0]) == 2.0


def test_calibration_summary_is_json_ready():
    import json

    z, y = _overconfident(n=100)
    s = calibration_summary(apply_temperature(z, 1.0), y, n_bins=10)
    json.dumps(s, allow_nan=False)
    assert len(s["reliability"]["edges"]) == 11
    assert sum(s["reliability"]["counts"]) == 100
    assert s["ece"] == pytest.approx(expected_calibration_error(apply_temperature(z, 1.0), y, n_bins=10))
