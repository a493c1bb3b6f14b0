"""Grad-CAM against pytorch-grad-cam, and the backward-free CAM of linear heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gusa_core.inference.gradcam import cam_from_features, grad_cam, normalize_cam
from gusa_core.models import build_model

H, W = 64, 96


class _LogitsOnly(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).logits


def _reference(model, x, classes, cam_hw):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=_LogitsOnly(model), target_layers=[model.cam_layer]) as cam:
        # compare before its resize to the input size: target = the CAM layer's own size
        cam.get_target_width_height = lambda input_tensor: (cam_hw[1], cam_hw[0])
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])


def _as_reference_scales(ours):
    # pytorch-grad-cam min-max scales twice (per layer, then after aggregating layers);
    # the second pass only matters where a map's maximum is near its 1e-7 epsilon
    return normalize_cam(ours).numpy()


@pytest.mark.parametrize("variant", ["fa", "baseline", "gusa", "attention-gate"])
def test_grad_cam_matches_pytorch_grad_cam(variant):
    torch.manual_seed(0)
    model = build_model(variant).eval()
    x = torch.randn(2, 3, H, W)
    ours = grad_cam(model, x)
    assert model.backbone.conv0.weight.grad is None  # no parameter gradients left behind
    stride = model.stride
    assert ours.shape == (2, H // stride, W // stride)
    assert float(ours.min()) >= 0.0 and float(ours.max()) <= 1.0
    with torch.no_grad():
        predicted = model(x).logits.argmax(1)
    ref = _reference(model, x, predicted, tuple(ours.shape[1:]))
    np.testing.assert_allclose(_as_reference_scales(ours), ref, atol=1e-4)
    if variant == "fa":
        other = (predicted + 1) % 4
        ref_other = _reference(model, x, other, tuple(ours.shape[1:]))
        np.testing.assert_allclose(_as_reference_scales(grad_cam(model, x, class_idx=other)), ref_other, atol=1e-4)


@pytest.mark.parametrize("variant", ["fa", "baseline", "attention-gate", "guroi"])
def test_cam_from_features_equals_grad_cam_for_linear_heads(variant):
    torch.manual_seed(1)
    model = build_model(variant).eval()
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        logits, _, features = model.forward_with_features(x)
        cams = cam_from_features(features, model.linear_cam_weight())
    assert cams.shape == (2, 4, *features.shape[-2:])
    for c in range(4):
        torch.testing.assert_close(cams[:, c], grad_cam(model, x, class_idx=c), atol=1e-5, rtol=1e-4)


def test_grad_cam_works_under_inference_mode():
    model = build_model("fa").eval()
    x = torch.randn(1, 3, H, W)
    expected = grad_cam(model, x)
    with torch.inference_mode():
        got = grad_cam(model, x)
    torch.testing.assert_close(got, expected)


def test_gated_roi_models_have_no_linear_cam():
    assert build_model("gusa").linear_cam_weight() is None
    assert build_model("rga").linear_cam_weight() is None
