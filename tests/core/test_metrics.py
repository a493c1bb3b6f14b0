"""gusa_core.metrics against scikit-learn called directly (the oracle), plus edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import roc_auc_score, roc_curve

from gusa_core import metrics

CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]


def _random_case(n=40, c=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=n)
    y[:c] = np.arange(c)  # every class present
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y] * rng.random((n, 1))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def test_evaluate_matches_sklearn():
    y, probs = _random_case()
    out = metrics.evaluate(y, probs, CLASSES)
    pred = probs.argmax(1)
    assert out["accuracy"] == pytest.approx(np.mean(pred == y))
    # macro one-vs-rest AUC, computed independently by sklearn
    assert out["auc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    for c, name in enumerate(CLASSES):
        assert out["auc_per_class"][name] == pytest.approx(roc_auc_score(y == c, probs[:, c]))
        fpr, tpr, _ = roc_curve(y == c, probs[:, c])
        np.testing.assert_allclose(out["roc"][name]["fpr"], fpr)
        np.testing.assert_allclose(out["roc"][name]["tpr"], tpr)
        assert len(out["roc"][name]["thresholds"]) == len(fpr)
    np.testing.assert_allclose(out["confusion"], sk_confusion(y, pred, labels=range(4), normalize="true"))
    np.testing.assert_array_equal(out["confusion_counts"], sk_confusion(y, pred, labels=range(4)))
    assert out["n_images"] == len(y)
    assert out["class_names"] == CLASSES
    assert out["miou"] is None
    json.dumps(out, allow_nan=False)  # JSON-ready, no NaN / inf


def test_missing_class_is_nan_and_left_out_of_macro():
    y, probs = _random_case(seed=3)
    keep = y != 2
    y, probs = y[keep], probs[keep]
    out = metrics.evaluate(y, probs, CLASSES)
    assert out["auc_per_class"]["InSitu"] is None
    assert out["roc"]["InSitu"] is None
    expected = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (0, 1, 3)])
    assert out["auc_macro"] == pytest.approx(expected)
    assert any("InSitu" in note for note in out["notes"])
    # the row of the absent class is zeros, not NaN; the other rows sum to 1
    conf = np.array(out["confusion"])
    assert np.all(conf[2] == 0)
    np.testing.assert_allclose(conf[[0, 1, 3]].sum(1), 1.0)
    per_class, macro, _ = metrics.roc_auc(y, probs)
    assert math.isnan(per_class[2]) and macro == pytest.approx(expected)


def test_confusion_matrix_all_labels_even_if_never_predicted():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    conf = metrics.confusion_matrix(y, pred, 4)
    assert conf.shape == (4, 4)
    np.testing.assert_allclose(conf[:2, :2], [[0.5, 0.5], [0.0, 1.0]])
    assert not np.isnan(conf).any()


def test_mean_iou_eq9():
    roi = np.zeros((4, 4), np.float32)
    roi[:2, :2] = 0.9  # 4 pixels predicted
    mask = np.zeros((4, 4), np.uint8)
    mask[:2, :] = 255  # 8 pixels true
    assert metrics.iou(roi, mask) == pytest.approx(4 / 8)
    assert metrics.iou(np.zeros((3, 3)), np.zeros((3, 3), np.uint8)) == 1.0  # both empty
    assert metrics.iou(roi, mask, tau=0.95) == 0.0
    miou, per = metrics.mean_iou([roi, roi, np.zeros((3, 3))], [mask, None, np.zeros((3, 3), np.uint8)])
    assert per == [pytest.approx(0.5), None, 1.0]
    assert miou == pytest.approx(0.75)
    assert metrics.mean_iou([roi], [None]) == (None, [None])
    with pytest.raises(ValueError):
        metrics.iou(roi, np.zeros((2, 2)))


def test_evaluate_with_masks_reports_miou():
    y, probs = _random_case(n=8)
    rng = np.random.default_rng(1)
    roi = [rng.random((6, 8)) for _ in y]
    masks = [((rng.random((6, 8)) > 0.5) * 255).astype(np.uint8) if i % 2 else None for i in range(len(y))]
    out = metrics.evaluate(y, probs, CLASSES, roi=roi, masks=masks)
    expected = [
        np.logical_and(r > 0.5, m > 0).sum() / np.logical_or(r > 0.5, m > 0).sum() for r, m in zip(roi, masks) if m is not None
    ]
    assert out["miou"] == pytest.approx(np.mean(expected))


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        metrics.evaluate([0, 1], np.ones((2, 3)) / 3, CLASSES)
    with pytest.raises(ValueError):
        metrics.evaluate([0, 5], np.ones((2, 4)) / 4, CLASSES)
