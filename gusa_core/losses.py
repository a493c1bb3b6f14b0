"""Losses of the GuSA paper: dice on the RoI map (eq. 2) plus cross-entropy (eqs. 6-8).

The dice coefficient is implemented as the paper prints it,

    D = 2 (Σ y ỹ + ε) / Σ (ỹ + y + ε),

i.e. ε is added once in the numerator but *inside* the sum of the denominator,
so the denominator carries ``M·N·ε``. With the customary ε = 1 a perfect map of
a 25 % RoI on a 24x32 grid would score only 2(192 + 1)/(192 + 192 + 768) ≈ 0.34, and the
loss could never approach zero; the default ε = 1e-3 keeps the printed form
while its total smoothing (0.77 on 24x32) matches the usual "+1".

Masks arrive at input resolution, ``(B, 1, H, W)`` in {0, 1}; they are reduced
to the RoI map's ``M x N`` grid by area averaging (adaptive average pooling),
so the coarse target is the RoI share of each cell, in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DICE_EPS", "downsample_masks", "dice_coefficient", "dice_loss", "gusa_loss"]

#: ε of eq. 2 (see the module notes for why it is not 1).
DICE_EPS = 1e-3


def downsample_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Area-average ``masks`` of shape (B, 1, H, W) to ``size`` = (M, N): the RoI share of each cell."""
    masks = masks.to(torch.float32)
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.adaptive_avg_pool2d(masks, size)


def dice_coefficient(roi: Tensor, target: Tensor, *, eps: float = DICE_EPS) -> Tensor:
    """Eq. 2 per image: ``2 (Σ y ỹ + ε) / Σ (ỹ + y + ε)`` over each map; shape (B,)."""
    roi = roi.flatten(1).to(torch.float32)
    target = target.flatten(1).to(torch.float32)
    numerator = 2.0 * ((roi * target).sum(dim=1) + eps)
    denominator = (roi + target + eps).sum(dim=1)
    return numerator / denominator


def dice_loss(roi: Tensor, masks: Tensor, has_mask: Tensor | None = None, *, eps: float = DICE_EPS) -> Tensor:
    """Mean of ``1 - D`` (eq. 2) over the images that have a mask.

    Parameters
    ----------
    roi : Tensor of shape (B, 1, M, N)
        The RoI map ỹ (sigmoid probabilities).
    masks : Tensor of shape (B, 1, H, W)
        Ground-truth masks in {0, 1} at input resolution (any content for images without one).
    has_mask : bool or float Tensor of shape (B,), optional
        Which images have a mask; all of them if None. Float values weigh
        each image's term (0 = no mask; an accepted model suggestion may
        weigh less than a painted mask); the sum is still divided by the
        number of images with a mask, so weights below 1 lower the term.
    eps : float
        ε of eq. 2.

    Returns
    -------
    Tensor
        Scalar; exactly 0 (with zero gradients) when no image has a mask.
    """
    batch = roi.shape[0]
    if has_mask is None:
        has_mask = torch.ones(batch, dtype=torch.bool, device=roi.device)
    weight = has_mask.to(device=roi.device).reshape(batch).to(torch.float32)
    present = weight > 0
    target = downsample_masks(masks.to(roi.device), tuple(roi.shape[-2:]))
    # unmasked images' content must not matter, not even through NaNs
    target = torch.where(present.view(-1, 1, 1, 1), target, torch.zeros_like(target))
    per_image = 1.0 - dice_coefficient(roi, target, eps=eps)
    weight = weight.to(per_image.dtype)
    return (per_image * weight).sum() / present.sum().to(per_image.dtype).clamp(min=1.0)


def gusa_loss(out, labels: Tensor, masks: Tensor | None = None, has_mask: Tensor | None = None, *, lam: float = 1.0,
              class_weight: Tensor | None = None):
    """Eq. 8: ``L = L_CE + λ · L_dice``.

    Parameters
    ----------
    out : ModelOutput
        The model's ``(logits, roi)``; a model without RoI branch gets cross-entropy only.
    labels : Tensor of shape (B,)
        Class indices.
    masks : Tensor of shape (B, 1, H, W) or None
        Ground-truth masks in {0, 1}.
    has_mask : bool or float Tensor of shape (B,) or None
        Which images have a mask (all, if None and ``masks`` is given), or
        each image's dice weight (see :func:`dice_loss`).
    lam : float
        λ, the weight of the dice term.
    class_weight : Tensor of shape (C,) or None
        Per-class weights of the cross-entropy (its mean is then taken over
        the batch's weights, as :func:`torch.nn.functional.cross_entropy`
        does); None: unweighted, as in the paper.

    Returns
    -------
    loss : Tensor
        Scalar to back-propagate.
    parts : dict
        ``{"ce": float, "dice": float}`` (dice 0.0 where it does not apply).
    """
    logits, roi = out[0], out[1]
    weight = None if class_weight is None else class_weight.to(logits.device, torch.float32)
    ce = F.cross_entropy(logits.float(), labels.to(logits.device).long(), weight=weight)
    if roi is None or masks is None or lam == 0:
        return ce, {"ce": float(ce.detach()), "dice": 0.0}
    dice = dice_loss(roi, masks, has_mask)
    loss = ce + lam * dice
    return loss, {"ce": float(ce.detach()), "dice": float(dice.detach())}
