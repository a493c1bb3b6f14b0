"""Eq. 2 (dice as printed) and eq. 8 (CE + λ dice) against hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gusa_core.losses import DICE_EPS, dice_coefficient, dice_loss, downsample_masks, gusa_loss
from gusa_core.models import ModelOutput


def test_dice_coefficient_as_printed_by_hand():
    roi = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]])
    y = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    eps = 0.1
    # 2 (Σ y ỹ + ε) / Σ (ỹ + y + ε): ε once above, once per cell below
    expected = 2 * (1.5 + eps) / (1.75 + 2.0 + 4 * eps)
    assert dice_coefficient(roi, y, eps=eps).item() == pytest.approx(expected, rel=1e-6)
    assert dice_loss(roi, y, torch.tensor([True]), eps=eps).item() == pytest.approx(1 - expected, rel=1e-6)


def test_masks_are_area_downsampled_to_the_roi_grid():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16, :8] = 1  # the top-left cell half covered
    coarse = downsample_masks(mask, (2, 2))
    torch.testing.assert_close(coarse, torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]]))


def test_dice_averages_only_images_with_masks():
    g = torch.Generator().manual_seed(0)
    roi = torch.rand(3, 1, 3, 4, generator=g)
    masks = (torch.rand(3, 1, 48, 64, generator=g) > 0.5).float()
    has = torch.tensor([True, False, True])
    coarse = downsample_masks(masks, (3, 4))
    per = [1 - dice_coefficient(roi[i : i + 1], coarse[i : i + 1]).item() for i in (0, 2)]
    assert dice_loss(roi, masks, has).item() == pytest.approx(sum(per) / 2, rel=1e-6)

    changed = masks.clone()
    changed[1] = 1.0 - changed[1]
    changed[1, 0, 0, 0] = float("nan")  # even garbage in an unmasked slot changes nothing
    assert dice_loss(roi, changed, has).item() == dice_loss(roi, masks, has).item()


def test_no_masks_in_batch_gives_zero_and_zero_gradient():
    roi = torch.rand(2, 1, 3, 4, requires_grad=True)
    loss = dice_loss(roi, torch.ones(2, 1, 48, 64), torch.tensor([False, False]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(roi.grad, torch.zeros_like(roi))


def test_perfect_prediction_scores_near_zero_with_default_eps():
    y = torch.zeros(1, 1, 24, 32)
    y[..., 5:15, 8:20] = 1
    assert dice_loss(y.clone(), y, torch.tensor([True])).item() < 5e-3
    assert DICE_EPS < 0.01


def test_gusa_loss_is_ce_plus_lambda_dice_and_gradients_flow():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, generator=g, requires_grad=True)
    roi_logit = torch.randn(3, 1, 3, 4, generator=g, requires_grad=True)
    roi = torch.sigmoid(roi_logit)
    labels = torch.tensor([0, 3, 1])
    masks = (torch.rand(3, 1, 48, 64, generator=g) > 0.3).float()
    has = torch.tensor([True, True, False])
    loss, parts = gusa_loss(ModelOutput(logits, roi), labels, masks, has, lam=0.5)

    ce = -sum(math.log(F.softmax(logits[i], 0)[labels[i]].item()) for i in range(3)) / 3
    dice = dice_loss(roi, masks, has).item()
    assert parts["ce"] == pytest.approx(ce, rel=1e-5)
    assert parts["dice"] == pytest.approx(dice, rel=1e-6)
    assert loss.item() == pytest.approx(ce + 0.5 * dice, rel=1e-5)
    loss.backward()
    assert logits.grad.abs().sum() > 0
    assert roi_logit.grad[:2].abs().sum() > 0
    assert torch.equal(roi_logit.grad[2], torch.zeros_like(roi_logit.grad[2]))  # no mask: CE only


def test_model_without_roi_gets_cross_entropy_only():
    logits = torch.randn(2, 4)
    labels = torch.tensor([1, 2])
    loss, parts = gusa_loss(ModelOutput(logits, None), labels, torch.ones(2, 1, 48, 64), torch.tensor([True, True]))
    assert loss.item() == pytest.approx(F.cross_entropy(logits, labels).item())
    assert parts["dice"] == 0.0
