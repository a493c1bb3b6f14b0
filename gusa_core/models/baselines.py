"""The paper's comparison networks: the DenseNet-169 baseline and attention gates.

``baseline`` is the full DenseNet-169 classifier (Table I: 12,332,740 counted
without BatchNorm, exact). ``attention-gate`` follows Schlemper et al., "Attention
gated networks: learning to leverage salient regions in medical images" (Medical
Image Analysis 2019) on the same trunk: the gating signal ``g`` is the last
DenseNet feature map (1664 channels, stride 32); additive grid attention gates
(their ``GridAttentionBlock2D``, concatenation mode, sub-sampling 2, inter channels
= in channels / 2, output transform Conv1x1 + BN) gate the outputs of dense blocks
2 and 3; each gated map and ``g`` are globally average-pooled into their own
linear classifier, and the logits are averaged (their "mean" aggregation).
The gates are unsupervised. No gate layout on this trunk was found that gives
Table I's 19,368,390 exactly; ``gusa info`` reports the residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._blocks import DENSENET169_CHANNELS, DenseNetTrunk, GuSABase

__all__ = ["DenseNetBaseline", "AttentionGateNet", "baseline", "attention_gate"]


class _GridAttentionGate(nn.Module):
    """Additive attention gate of Schlemper et al. 2019 (eqs. 1-2 of their paper).

    ``q = ψᵀ ReLU(W_xᵀ x + W_gᵀ g + b_g) + b_ψ``, ``α = sigmoid(q)``, output ``W(α · x)``.
    ``W_x`` is a 2x2 stride-2 convolution (no bias); ``g`` is resized to its grid and
    ``α`` back to ``x``'s grid, bilinearly.
    """

    def __init__(self, in_channels: int, gating_channels: int, inter_channels: int | None = None):
        super().__init__()
        inter_channels = inter_channels or in_channels // 2
        self.theta = nn.Conv2d(in_channels, inter_channels, kernel_size=2, stride=2, bias=False)
        self.phi = nn.Conv2d(gating_channels, inter_channels, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(inter_channels, 1, kernel_size=1, bias=True)
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=1, bias=True)
        self.norm = nn.BatchNorm2d(in_channels)

    def coefficients(self, x: Tensor, g: Tensor) -> Tensor:
        """The attention coefficients α, shape (B, 1, h, w) at ``x``'s grid."""
        theta_x = self.theta(x)
        phi_g = F.interpolate(self.phi(g), size=theta_x.shape[-2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta_x + phi_g)))
        return F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        return self.norm(self.conv(x * self.coefficients(x, g)))


class DenseNetBaseline(GuSABase):
    """Full DenseNet-169 ``features`` → ReLU → GAP → Linear(1664 → C)."""

    def __init__(self, *, num_classes: int = 4):
        super().__init__()
        self.variant = "baseline"
        self.has_roi = False
        self.num_classes = num_classes
        self.backbone = DenseNetTrunk("norm5")
        self.stride = self.backbone.stride
        self.relu = nn.ReLU()
        self.classifier = nn.Linear(self.backbone.out_channels, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The ReLU after ``norm5``: the last feature maps."""
        return self.relu

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, None, Tensor]:
        features = self.relu(self.backbone(x)[0])
        return self.classifier(features.mean(dim=(2, 3))), None, features

    def linear_cam_weight(self) -> Tensor:
        return self.classifier.weight


class AttentionGateNet(GuSABase):
    """Attention-gated DenseNet-169 (Schlemper et al. 2019), unsupervised gates."""

    _GATED = ("denseblock2", "denseblock3")

    def __init__(self, *, num_classes: int = 4):
        super().__init__()
        self.variant = "attention-gate"
        self.has_roi = False
        self.num_classes = num_classes
        self.backbone = DenseNetTrunk("norm5")
        self.relu = nn.ReLU()
        g_channels = self.backbone.out_channels
        channels = [DENSENET169_CHANNELS[name] for name in self._GATED]
        self.gates = nn.ModuleList([_GridAttentionGate(c, g_channels) for c in channels])
        self.classifier = nn.ModuleList([nn.Linear(c, num_classes) for c in [*channels, g_channels]])
        self.stride = 16

    @property
    def cam_layer(self) -> nn.Module:
        """The gate on dense block 3 (stride 16): its output is the deepest gated map."""
        return self.gates[-1]

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, None, Tensor]:
        features, tapped = self.backbone(x, self._GATED)
        g = self.relu(features)
        gated = [gate(t, g) for gate, t in zip(self.gates, tapped)]
        pooled = [m.mean(dim=(2, 3)) for m in (*gated, g)]
        logits = torch.stack([head(p) for head, p in zip(self.classifier, pooled)]).mean(dim=0)
        return logits, None, gated[-1]

    def linear_cam_weight(self) -> Tensor:
        return self.classifier[len(self._GATED) - 1].weight / len(self.classifier)


def baseline(*, num_classes: int = 4) -> DenseNetBaseline:
    """Baseline (B): the DenseNet-169 classifier."""
    return DenseNetBaseline(num_classes=num_classes)


def attention_gate(*, num_classes: int = 4) -> AttentionGateNet:
    """Attention gates (Schlemper et al. 2019) on DenseNet-169."""
    return AttentionGateNet(num_classes=num_classes)
