"""Grad-CAM (Selvaraju et al. 2017) for the models without RoI branch.

The map is taken at ``model.cam_layer`` from the classifier's logits (not the
softmax): ``w_k = mean_ij ∂logit_c/∂A_k(i, j)``, ``cam = ReLU(Σ_k w_k A_k)``,
then min-max normalised per image exactly as pytorch-grad-cam does
(``(cam - min) / (max - min + 1e-7)``). Maps are returned at the CAM layer's
resolution; the caller up-samples them to the image.

For a linear head (GAP followed by a linear layer or 1x1 convolution) the
gradient is ``W_c / (h·w)`` everywhere, so Grad-CAM equals the class activation
map :func:`cam_from_features` computes without a backward pass (used by the
ONNX export and fast inference).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["grad_cam", "cam_from_features", "normalize_cam"]

_EPS = 1e-7


def normalize_cam(cam: Tensor) -> Tensor:
    """Min-max normalise each map of ``cam`` (shape (..., h, w)) to [0, 1] as pytorch-grad-cam does."""
    low = cam.amin(dim=(-2, -1), keepdim=True)
    cam = cam - low
    return cam / (cam.amax(dim=(-2, -1), keepdim=True) + _EPS)


def cam_from_features(features: Tensor, weight: Tensor) -> Tensor:
    """Class activation maps that equal Grad-CAM for a linear head.

    Parameters
    ----------
    features : Tensor of shape (B, K, h, w)
        Output of ``model.cam_layer``.
    weight : Tensor of shape (C, K)
        ``model.linear_cam_weight()``: ``logits = weight @ GAP(features) + ...``.

    Returns
    -------
    Tensor of shape (B, C, h, w)
        ``ReLU(Σ_k weight[c, k] / (h·w) · A_k)``, normalised per map to [0, 1].
    """
    h, w = features.shape[-2:]
    cam = torch.einsum("ck,bkhw->bchw", weight.to(features.dtype) / (h * w), features)
    return normalize_cam(torch.relu(cam))


def _class_indices(class_idx, logits: Tensor) -> Tensor:
    batch = logits.shape[0]
    if class_idx is None:
        return logits.argmax(dim=1)
    if isinstance(class_idx, int):
        return torch.full((batch,), class_idx, dtype=torch.long, device=logits.device)
    idx = torch.as_tensor(class_idx, dtype=torch.long, device=logits.device).reshape(-1)
    if idx.numel() != batch:
        raise ValueError(f"class_idx has {idx.numel()} entries for a batch of {batch}")
    return idx


def grad_cam(model, x: Tensor, class_idx: int | Sequence[int] | Tensor | None = None) -> Tensor:
    """Grad-CAM maps of ``model`` for the batch ``x``.

    Parameters
    ----------
    model : GuSABase
        Any model of the family (its ``cam_layer`` is used); its mode is left as is.
    x : Tensor of shape (B, 3, H, W)
        Network input.
    class_idx : int, sequence of int, Tensor or None
        Class per image (or one for all); the predicted class if None.

    Returns
    -------
    Tensor of shape (B, h, w)
        float32 maps in [0, 1] at ``cam_layer``'s resolution, detached.
    """
    captured = {}

    def _hook(module, args, output):
        # a fresh leaf: gradients stop here, the trunk needs no backward pass
        leaf = output.detach().requires_grad_(True)
        captured["a"] = leaf
        return leaf

    handle = model.cam_layer.register_forward_hook(_hook)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            logits = model(x.clone())[0]
            activations = captured["a"]
            idx = _class_indices(class_idx, logits)
            score = logits.gather(1, idx[:, None]).sum()
            (grads,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activations.detach()).sum(dim=1))
    return normalize_cam(cam.float()).detach()
