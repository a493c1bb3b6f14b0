"""Suggested masks and the annotation queue on small synthetic arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gusa_core.assist import RankedItem, rank_images, suggest_mask, uncertainty_scores
from gusa_core.metrics import iou

# ------------------------------------------------------------------ suggest


def test_raw_threshold_matches_the_mean_iou_binarisation():
    rng = np.random.default_rng(0)
    m = rng.random((17, 23)).astype(np.float32)
    m[0, 0] = 0.5  # exactly τ is background, as in eq. 9
    out = suggest_mask(m, tau=0.5, min_island_fraction=0.0, fill_holes=False)
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 255}
    np.testing.assert_array_equal(out > 0, m > 0.5)
    assert iou(m, out, tau=0.5) == 1.0


def test_small_islands_are_removed_large_kept_and_diagonals_connect():
    m = np.zeros((64, 64))
    m[10:30, 10:30] = 0.9  # 400 px
    m[50:52, 50:52] = 0.9  # 4 px < 0.005 * 4096 = 20.5
    m[40, 5] = m[41, 6] = m[42, 7] = m[43, 8] = m[44, 9] = m[45, 10] = 0.9  # diagonal line, 6 px
    out = suggest_mask(m, min_island_fraction=0.005, fill_holes=False)
    assert out[10:30, 10:30].all() and not out[50:52, 50:52].any() and not out[40:46].any()
    # 6 diagonal pixels are one 8-connected island: kept once the threshold is below 6 px
    out = suggest_mask(m, min_island_fraction=5.5 / 4096, fill_holes=False)
    assert out[45, 10] == 255 and not out[50:52, 50:52].any()


def test_holes_are_filled_but_bays_open_to_the_border_are_not():
    m = np.zeros((40, 40))
    m[5:20, 5:20] = 1.0
    m[9:15, 9:15] = 0.0  # enclosed hole
    m[25:40, 25:35] = 1.0
    m[30:40, 28:32] = 0.0  # bay open to the bottom border
    out = suggest_mask(m, min_island_fraction=0.0) > 0
    assert out[9:15, 9:15].all()
    assert not out[30:40, 28:32].any()


@pytest.mark.parametrize("seed", range(5))
def test_cleanup_matches_scipy_ndimage(seed):
    ndi = pytest.importorskip("scipy.ndimage")
    import cv2

    rng = np.random.default_rng(seed)
    m = cv2.GaussianBlur(rng.random((48, 64)).astype(np.float32), (0, 0), 2.0)
    m = (m - m.min()) / (m.max() - m.min())
    frac = 0.01
    fg = m > 0.5
    lab, n = ndi.label(fg, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())
    keep = sizes >= frac * fg.size
    keep[0] = False
    expected = ndi.binary_fill_holes(keep[lab])
    original = m.copy()
    out = suggest_mask(m, min_island_fraction=frac)
    np.testing.assert_array_equal(out > 0, expected)
    np.testing.assert_array_equal(m, original)  # input untouched


def test_suggest_mask_edge_cases_and_errors():
    assert not suggest_mask(np.zeros((5, 5))).any()
    assert suggest_mask(np.ones((5, 5))).all()
    with pytest.raises(ValueError, match="H, W"):
        suggest_mask(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        suggest_mask(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="min_island_fraction"):
        suggest_mask(np.zeros((3, 3)), min_island_fraction=1.5)


# --------------------------------------------------------------------- rank


def _entropy(p):
    return -sum(v * math.log(v) for v in p if v > 0)


def test_uncertainty_scores_against_direct_formulas():
    rng = np.random.default_rng(1)
    fold_probs = rng.dirichlet(np.ones(4), size=(3, 6))  # F=3, N=6, C=4
    fold_roi = rng.random((3, 6, 4, 5))
    s = uncertainty_scores(fold_probs, fold_roi)
    for i in range(6):
        mean = fold_probs[:, i].mean(axis=0)
        h = _entropy(mean)
        bald = h - np.mean([_entropy(fold_probs[f, i]) for f in range(3)])
        assert s["entropy"][i] == pytest.approx(h / math.log(4))
        assert s["disagreement"][i] == pytest.approx(bald / math.log(4))
        mm = fold_roi[:, i].mean(axis=0)
        assert s["roi_uncertainty"][i] == pytest.approx(np.mean(4 * mm * (1 - mm)))
    np.testing.assert_allclose(s["mean_probs"], fold_probs.mean(axis=0))


def test_uncertainty_extremes():
    onehot = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # two confident folds that contradict
    s = uncertainty_scores(onehot, np.stack([np.zeros((1, 2, 2)), np.ones((1, 2, 2))]))
    assert s["entropy"][0] == pytest.approx(1.0)
    assert s["disagreement"][0] == pytest.approx(1.0)
    assert s["roi_uncertainty"][0] == pytest.approx(1.0)  # folds disagree on every pixel
    agree = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])
    s = uncertainty_scores(agree)
    assert s["entropy"][0] == pytest.approx(1.0) and s["disagreement"][0] == pytest.approx(0.0)
    assert s["roi_uncertainty"][0] == 0.0
    sure = uncertainty_scores(np.array([[[1.0, 0.0, 0.0]]]), np.zeros((1, 1, 3, 3)))
    assert sure["entropy"][0] == 0.0 and sure["disagreement"][0] == 0.0 and sure["roi_uncertainty"][0] == 0.0
    with pytest.raises(ValueError, match="F, N, C"):
        uncertainty_scores(np.ones((2, 2)))
    with pytest.raises(ValueError, match="probabilities"):
        uncertainty_scores(np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match="fold_roi"):
        uncertainty_scores(agree, np.zeros((1, 1, 2, 2)))


def test_rank_images_includes_excludes_and_orders():
    names = ["A", "B"]
    fold_probs = np.array(
        [
            [[0.5, 0.5], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]],
            [[0.5, 0.5], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]],
        ]
    )
    ids = ["u_uncertain", "u_sure", "l_agree_masked", "l_disagree", "l_agree_nomask", "u_tie"]
    labels = [None, None, "A", "A", "A", None]
    has_mask = [False, False, True, True, False, False]
    s = uncertainty_scores(fold_probs)
    queue = rank_images(ids, s, labels=labels, has_mask=has_mask, class_names=names)
    assert all(isinstance(q, RankedItem) for q in queue)
    assert "l_agree_masked" not in [q.id for q in queue]
    by_id = {q.id: q for q in queue}
    assert by_id["u_uncertain"].reason == "unlabelled"
    assert by_id["l_disagree"].reason == "disagrees with label"
    assert by_id["l_agree_nomask"].reason == "no mask"
    assert by_id["l_disagree"].parts["label_disagreement"] == pytest.approx(0.8)
    assert by_id["u_sure"].parts["label_disagreement"] == 0.0
    for q in queue:
        assert q.score == pytest.approx(q.parts["entropy"] + q.parts["disagreement"] + q.parts["label_disagreement"])
    scores = [q.score for q in queue]
    assert scores == sorted(scores, reverse=True)
    assert queue[0].id == "l_disagree"  # entropy 0.72 + 0.8 beats the coin flip's 1.0
    # equal scores: ordered by id
    tie = [q.id for q in queue if q.id in ("l_agree_nomask", "u_tie")]
    assert tie == ["l_agree_nomask", "u_tie"]


def test_rank_images_weights_and_explicit_predictions():
    s = {"entropy": np.array([0.1, 0.9, 0.5]), "disagreement": np.array([0.8, 0.0, 0.5])}
    only_bald = rank_images(["a", "b", "c"], s, weights={"disagreement": 1.0})
    assert [q.id for q in only_bald] == ["a", "c", "b"]
    none = rank_images(["c", "a", "b"], s, weights={})
    assert [q.id for q in none] == ["a", "b", "c"]
    q = rank_images(["a", "b", "c"], s, labels=["X", "X", None], predicted=["Y", "X", "X"], has_mask=[True, True, False])
    assert [(it.id, it.reason) for it in q] == [("a", "disagrees with label"), ("c", "unlabelled")]
    assert q[0].parts["label_disagreement"] == 1.0  # no probabilities: full weight
    with pytest.raises(ValueError, match="predicted"):
        rank_images(["a", "b", "c"], s, labels=["X", None, None])
    with pytest.raises(ValueError, match="expected"):
        rank_images(["a", "b"], s)


def test_spread_by_class_takes_turns_and_keeps_score_order_within_each_class():
    from gusa_core.assist import RankedItem, spread_by_class

    rng = np.random.default_rng(3)
    items = [RankedItem(id=f"i{k:02d}", score=float(v), reason="unlabelled", predicted=str(c))
             for k, (v, c) in enumerate(zip(rng.random(23), rng.choice(["A", "B", "C"], 23, p=[0.7, 0.2, 0.1])))]
    items.sort(key=lambda it: (-it.score, it.id))
    out = spread_by_class(items)
    assert sorted(it.id for it in out) == sorted(it.id for it in items)
    # oracle: turn t holds the t-th most uncertain image of each class, a turn's images by score
    ranks = {}
    for it in items:
        ranks[it.id] = sum(1 for o in items if o.predicted == it.predicted and (-o.score, o.id) < (-it.score, it.id))
    expected = sorted(items, key=lambda it: (ranks[it.id], -it.score, it.id))
    assert [it.id for it in out] == [it.id for it in expected]
    assert [it.predicted for it in out[:3]] and len({it.predicted for it in out[:3]}) == 3  # each class in the first turn
    assert spread_by_class([]) == []


def test_rank_images_spread_option():
    ids = ["a", "b", "c", "d"]
    scores = {"entropy": np.array([0.9, 0.8, 0.7, 0.1]), "disagreement": np.zeros(4), "roi_uncertainty": np.zeros(4)}
    by_score = rank_images(ids, scores, predicted=["X", "X", "X", "Y"])
    assert [it.id for it in by_score] == ["a", "b", "c", "d"] and by_score[3].predicted == "Y"
    spread = rank_images(ids, scores, predicted=["X", "X", "X", "Y"], spread=True)
    assert [it.id for it in spread] == ["a", "d", "b", "c"]
    # nothing labelled yet (the first scan of a project): the classes still come from the probabilities
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8]])
    unlabelled = rank_images(ids, {**scores, "mean_probs": probs}, class_names=["X", "Y"], spread=True)
    assert [it.predicted for it in unlabelled] == ["X", "Y", "X", "X"] and [it.id for it in unlabelled] == ["a", "d", "b", "c"]
