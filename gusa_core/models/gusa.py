"""Guided Soft Attention networks (Yang et al., IEEE TMI 2020) and their relatives.

One module, :class:`GuSANet`, covers the variants that share the truncated
DenseNet-169 trunk and the bifurcation point ``bp`` (512 channels, stride 16):

===========  ===================  =============================================
variant      feature aggregation  attention
===========  ===================  =============================================
``gusa``     no                   ``A_G = A · ỹ`` (eq. 3)
``guroi``    no                   RoI branch trained jointly, classifier on ``A``
``fa``       yes                  none (no RoI branch)
``fa-gusa``  yes                  ``A_G = A · ỹ`` (the paper's proposal)
``fa-guroi`` yes                  RoI branch trained jointly, classifier on ``A``
``rga``      yes                  ``A_G = A · (1 + ỹ)``, see below
===========  ===================  =============================================

``rga`` is our reading of region guided attention (Son et al. 2018) as the
paper uses it, "region supervision, implicit": the attention map is predicted
from ``bp`` and supervised by the RoI mask exactly like GuSA's ỹ, but it only
*emphasises* the RoI residually, ``A · (1 + ỹ)``, so features outside the RoI
still reach the classifier. Its layers are those of ``fa-gusa``, which matches
Table I giving both the same parameter count (7,024,844).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._blocks import DENSENET169_CHANNELS, DenseNetTrunk, FeatureAggregation, FeatureReduction, GuSABase

__all__ = ["GuSANet", "gusa", "guroi", "fa", "fa_gusa", "fa_guroi", "rga"]

_ATTENTION = ("none", "roi", "soft", "residual")
_FA_TAPS = ("relu0", "denseblock1", "denseblock2")


class GuSANet(GuSABase):
    """DenseNet-169 to dense block 3, optional FA, optional RoI branch, 1x1-conv classifier.

    Parameters
    ----------
    variant : str
        Name recorded on the model (``model.variant``).
    feature_aggregation : bool
        Aggregate the stem, dense blocks 1 and 2 and the reduced dense block 3
        (64 + 256 + 512 + 512 = 1344 channels) into ``bp``.
    attention : {"none", "roi", "soft", "residual"}
        ``"none"``: no RoI branch; ``"roi"``: RoI branch not applied (GuRoI);
        ``"soft"``: ``A · ỹ`` (GuSA); ``"residual"``: ``A · (1 + ỹ)`` (RGA).
    num_classes : int
        Outputs of the classifier.
    """

    def __init__(self, *, variant: str, feature_aggregation: bool, attention: str, num_classes: int = 4):
        super().__init__()
        if attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {_ATTENTION}, got {attention!r}")
        self.variant = variant
        self.attention = attention
        self.has_roi = attention != "none"
        self.num_classes = num_classes
        self.stride = 16

        self.backbone = DenseNetTrunk("denseblock3")
        self.reduce = FeatureReduction(self.backbone.out_channels, 512)
        if feature_aggregation:
            channels = [DENSENET169_CHANNELS[t] for t in _FA_TAPS] + [self.reduce.out_channels]
            self.aggregate = FeatureAggregation(channels, factors=(8, 4, 2, 1), out_channels=512)
        else:
            self.aggregate = None
        self.roi_head = nn.Conv2d(512, 1, kernel_size=1, bias=True) if self.has_roi else None
        self.classifier = nn.Conv2d(512, num_classes, kernel_size=1, bias=True)

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose output is ``bp``."""
        return self.aggregate if self.aggregate is not None else self.reduce

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        taps = _FA_TAPS if self.aggregate is not None else ()
        features, tapped = self.backbone(x, taps)
        bp = self.reduce(features)
        if self.aggregate is not None:
            bp = self.aggregate([*tapped, bp])
        roi = torch.sigmoid(self.roi_head(bp)) if self.roi_head is not None else None
        if self.attention == "soft":
            guided = bp * roi
        elif self.attention == "residual":
            guided = bp * (1.0 + roi)
        else:
            guided = bp
        logits = self.classifier(guided).mean(dim=(2, 3))
        return logits, roi, bp

    def linear_cam_weight(self) -> Tensor | None:
        if self.attention in ("soft", "residual"):
            return None  # the attention depends on bp: not a linear head
        return self.classifier.weight[:, :, 0, 0]


def gusa(*, num_classes: int = 4) -> GuSANet:
    """B + GuSA: the RoI map multiplies the ``bp`` activations (eq. 3)."""
    return GuSANet(variant="gusa", feature_aggregation=False, attention="soft", num_classes=num_classes)


def guroi(*, num_classes: int = 4) -> GuSANet:
    """B + GuRoI: RoI branch trained jointly, not applied to the activations."""
    return GuSANet(variant="guroi", feature_aggregation=False, attention="roi", num_classes=num_classes)


def fa(*, num_classes: int = 4) -> GuSANet:
    """B + FA: multi-depth feature aggregation, no RoI branch."""
    return GuSANet(variant="fa", feature_aggregation=True, attention="none", num_classes=num_classes)


def fa_gusa(*, num_classes: int = 4) -> GuSANet:
    """B + FA + GuSA, the paper's proposed network."""
    return GuSANet(variant="fa-gusa", feature_aggregation=True, attention="soft", num_classes=num_classes)


def fa_guroi(*, num_classes: int = 4) -> GuSANet:
    """B + FA + GuRoI."""
    return GuSANet(variant="fa-guroi", feature_aggregation=True, attention="roi", num_classes=num_classes)


def rga(*, num_classes: int = 4) -> GuSANet:
    """Region guided attention (our reading of Son et al. 2018): ``A · (1 + ỹ)``, ỹ supervised."""
    return GuSANet(variant="rga", feature_aggregation=True, attention="residual", num_classes=num_classes)
