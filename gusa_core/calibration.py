"""Confidence calibration: temperature scaling, reliability diagram, ECE and Brier score.

Temperature scaling (Guo et al., "On calibration of modern neural networks",
ICML 2017) divides the logits by one scalar ``T > 0`` fitted to minimise the
negative log-likelihood (NLL) of held-out predictions; the argmax, hence the
accuracy, is unchanged. Here ``T`` is fitted on the out-of-fold validation
predictions of a run.

The NLL is convex in ``β = 1/T`` (a log-sum-exp of ``β z`` minus a linear
term), so its derivative is increasing in ``β`` and the optimum is found by
bisection on the sign of the derivative, in ``log β``: no scipy, no step size
to tune, and it cannot diverge.

Logits may be replaced by log-probabilities: ``softmax(log p / T)`` equals
``softmax(z / T)`` because softmax ignores a constant added to a row. A run
that stored only probabilities can therefore still be calibrated.

Conventions
-----------
- ECE is the top-label expected calibration error of Guo et al.: the
  confidence ``max_c p_c`` is put in ``n_bins`` equal-width bins
  ``((m-1)/M, m/M]`` and ``ECE = Σ_m |B_m|/n · |acc(B_m) - conf(B_m)|``.
- The Brier score is the multiclass one of Brier (1950):
  ``mean_i Σ_c (p_ic - 1[y_i = c])²``, in [0, 2]. For two classes it is twice
  scikit-learn's ``brier_score_loss`` of the positive class.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "T_MIN",
    "T_MAX",
    "fit_temperature",
    "apply_temperature",
    "nll",
    "expected_calibration_error",
    "brier_score",
    "reliability_curve",
    "calibration_summary",
]

#: Bounds of the fitted temperature: data the model separates perfectly drive T to T_MIN.
T_MIN = 0.05
T_MAX = 20.0


def _check(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits/probs must be of shape (N, C) with C >= 2, got {z.shape}")
    y = np.asarray(labels).reshape(-1)
    if y.size != z.shape[0]:
        raise ValueError(f"{z.shape[0]} rows but {y.size} labels")
    if z.shape[0] == 0:
        raise ValueError("no samples")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be class indices")
        y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1]}), got {y.min()}..{y.max()}")
    return z, y.astype(np.int64)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Softmax of ``logits / T``.

    Parameters
    ----------
    logits : array-like of shape (N, C)
        Logits, or log-probabilities (same result).
    temperature : float
        ``T > 0``; 1 is plain softmax, larger is less confident.

    Returns
    -------
    ndarray of shape (N, C), float64
        Probabilities; rows sum to 1.
    """
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be of shape (N, C), got {z.shape}")
    return np.exp(_log_softmax(z / temperature))


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped at 1e-12)."""
    p, y = _check(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def _nll_and_grad(z: np.ndarray, y: np.ndarray, beta: float) -> tuple[float, float]:
    """NLL of softmax(β z) and its derivative in β: mean(E_p[z] - z_y)."""
    logp = _log_softmax(beta * z)
    p = np.exp(logp)
    rows = np.arange(len(y))
    value = float(-np.mean(logp[rows, y]))
    grad = float(np.mean((p * z).sum(axis=1) - z[rows, y]))
    return value, grad


def fit_temperature(logits, labels, *, t_min: float = T_MIN, t_max: float = T_MAX, tol: float = 1e-10) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` on labelled predictions.

    Parameters
    ----------
    logits : array-like of shape (N, C)
        Held-out logits (or log-probabilities), e.g. the out-of-fold
        validation predictions of a run.
    labels : array-like of int, shape (N,)
        True class indices.
    t_min, t_max : float
        Search interval; the result is clipped to it.
    tol : float
        Width in ``log T`` at which the bisection stops.

    Returns
    -------
    float
        ``T`` in ``[t_min, t_max]``; 1.0 when the logits carry no information
        (every row constant), so the NLL does not depend on ``T``.

    Raises
    ------
    ValueError
        Wrong shapes, no samples, labels out of range or non-finite logits.
    """
    z, y = _check(logits, labels)
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite (use log-probabilities clipped away from 0)")
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got {t_min}, {t_max}")
    z = z - z.mean(axis=1, keepdims=True)
    if np.abs(z).max() == 0:
        return 1.0
    lo, hi = math.log(1.0 / t_max), math.log(1.0 / t_min)  # in log β
    if _nll_and_grad(z, y, math.exp(lo))[1] >= 0:
        return float(t_max)
    if _nll_and_grad(z, y, math.exp(hi))[1] <= 0:
        return float(t_min)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if _nll_and_grad(z, y, math.exp(mid))[1] > 0:
            hi = mid
        else:
            lo = mid
    return float(1.0 / math.exp(0.5 * (lo + hi)))


def reliability_curve(probs, labels, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-label reliability diagram: confidence against accuracy in equal-width bins.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Class probabilities.
    labels : array-like of int, shape (N,)
    n_bins : int
        Bins ``((m-1)/M, m/M]`` of the confidence ``max_c p_c``; edges are
        ``np.linspace(0, 1, n_bins + 1)`` and a confidence of exactly 0 falls
        in the first bin.

    Returns
    -------
    confidence : ndarray of shape (n_bins,)
        Mean confidence of each bin (NaN for an empty bin).
    accuracy : ndarray of shape (n_bins,)
        Share of correct argmax predictions in each bin (NaN for an empty bin).
    counts : ndarray of shape (n_bins,), int64
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, y = _check(probs, labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / counts
    return confidence, accuracy, counts


def expected_calibration_error(probs, labels, *, n_bins: int = 15) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins (Guo et al. 2017), in [0, 1]."""
    confidence, accuracy, counts = reliability_curve(probs, labels, n_bins)
    full = counts > 0
    return float(np.sum(counts[full] * np.abs(accuracy[full] - confidence[full])) / counts.sum())


def brier_score(probs, labels) -> float:
    """Multiclass Brier score ``mean_i Σ_c (p_ic - 1[y_i = c])²``, in [0, 2] (lower is better)."""
    p, y = _check(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def calibration_summary(probs, labels, *, n_bins: int = 15) -> dict:
    """ECE, Brier score, NLL and the reliability diagram in one JSON-ready dict.

    Returns
    -------
    dict
        ``ece``, ``brier``, ``nll``, ``n_bins``, ``reliability``:
        ``{"edges", "confidence", "accuracy", "counts"}`` as lists (``None``
        for an empty bin).
    """
    confidence, accuracy, counts = reliability_curve(probs, labels, n_bins)
    as_list = lambda a: [None if not np.isfinite(v) else float(v) for v in a]  # noqa: E731
    return {
        "ece": expected_calibration_error(probs, labels, n_bins=n_bins),
        "brier": brier_score(probs, labels),
        "nll": nll(probs, labels),
        "n_bins": int(n_bins),
        "reliability": {
            "edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(),
            "confidence": as_list(confidence),
            "accuracy": as_list(accuracy),
            "counts": counts.tolist(),
        },
    }
