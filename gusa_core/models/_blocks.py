"""Private building blocks shared by the GuSA model family.

The trunk is torchvision's DenseNet-169 ``features``, cut after a named layer;
its submodules keep torchvision's names, so ImageNet weights load by renaming
``features.`` to ``backbone.`` and nothing else.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ModelOutput", "DenseNetTrunk", "FeatureReduction", "FeatureAggregation", "GuSABase"]

#: Channels of torchvision's DenseNet-169 feature maps, by layer name.
DENSENET169_CHANNELS = {"relu0": 64, "denseblock1": 256, "denseblock2": 512, "denseblock3": 1280, "norm5": 1664}
#: Down-sampling factor of each of those layers.
DENSENET169_STRIDES = {"relu0": 2, "denseblock1": 4, "denseblock2": 8, "denseblock3": 16, "norm5": 32}


class ModelOutput(NamedTuple):
    """What every model of the family returns.

    Attributes
    ----------
    logits : Tensor of shape (B, C)
        Class scores before the softmax (eq. 4 applies it in the loss and at inference).
    roi : Tensor of shape (B, 1, h, w) or None
        The RoI map ỹ of eq. 1 (sigmoid probabilities), or None for a model without RoI branch.
    """

    logits: Tensor
    roi: Tensor | None


class DenseNetTrunk(nn.Module):
    """torchvision's DenseNet-169 ``features`` up to and including ``last``.

    Parameters
    ----------
    last : str
        Last layer kept: ``"denseblock3"`` (1280 channels, stride 16) or ``"norm5"``
        (all four dense blocks, 1664 channels, stride 32).
    """

    def __init__(self, last: str = "denseblock3"):
        super().__init__()
        from torchvision.models import densenet169

        features = densenet169(weights=None).features
        for name, module in features.named_children():
            self.add_module(name, module)
            if name == last:
                break
        else:
            raise ValueError(f"DenseNet-169 has no layer {last!r}")
        self.out_channels = DENSENET169_CHANNELS[last]
        self.stride = DENSENET169_STRIDES[last]

    def forward(self, x: Tensor, taps: Sequence[str] = ()) -> tuple[Tensor, list[Tensor]]:
        """Return the last layer's output and the outputs of the layers named in ``taps`` (in order)."""
        found = {}
        for name, module in self.named_children():
            x = module(x)
            if name in taps:
                found[name] = x
        return x, [found[name] for name in taps]


class FeatureReduction(nn.Sequential):
    """BN + ReLU + Conv1x1 (with bias) + BN + ReLU: dense block 3's 1280 channels to 512."""

    def __init__(self, in_channels: int = 1280, out_channels: int = 512):
        super().__init__(
            OrderedDict(
                norm1=nn.BatchNorm2d(in_channels),
                relu1=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True),
                norm2=nn.BatchNorm2d(out_channels),
                relu2=nn.ReLU(),
            )
        )
        self.out_channels = out_channels


class FeatureAggregation(nn.Module):
    """Multi-depth feature aggregation (FA) to stride 16.

    Each input map is average-pooled by ``factor`` (its stride relative to 16),
    the maps are concatenated along channels and reduced by Conv1x1 + BN + ReLU.

    Parameters
    ----------
    in_channels : sequence of int
        Channels of the inputs, in the order ``forward`` receives them.
    factors : sequence of int
        Pooling factor of each input (1 = already at stride 16).
    out_channels : int
        Channels of the aggregated map ``bp``.
    """

    def __init__(self, in_channels: Sequence[int], factors: Sequence[int], out_channels: int = 512):
        super().__init__()
        self.factors = tuple(int(f) for f in factors)
        self.conv = nn.Conv2d(sum(in_channels), out_channels, kernel_size=1, bias=True)
        self.norm = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.out_channels = out_channels

    def forward(self, maps: Sequence[Tensor]) -> Tensor:
        pooled = [F.avg_pool2d(m, f) if f > 1 else m for m, f in zip(maps, self.factors)]
        return self.relu(self.norm(self.conv(torch.cat(pooled, dim=1))))


class GuSABase(nn.Module):
    """Common attributes and the forward contract of the family.

    Subclasses implement ``forward_with_features(x) -> (logits, roi, cam_features)``,
    where ``cam_features`` is the output of ``cam_layer``; ``forward`` returns
    :class:`ModelOutput`.
    """

    variant: str = ""
    has_roi: bool = False
    num_classes: int = 4
    #: Stride of ``cam_layer``'s output relative to the input.
    stride: int = 16
    #: Where the weights came from: ``"random"``, ``"imagenet:<file>"`` or ``"file:<file>"``.
    pretrained_source: str = "random"

    @property
    def cam_layer(self) -> nn.Module:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        raise NotImplementedError

    def linear_cam_weight(self) -> Tensor | None:
        """Weights ``(C, K)`` with ``logits = weight @ GAP(cam_features) + (terms free of it)``, or None.

        Where the head after ``cam_layer`` is linear (GAP + linear layer), Grad-CAM
        equals the class activation map made with these weights (see
        :func:`gusa_core.inference.gradcam.cam_from_features`).
        """
        return None

    def forward(self, x: Tensor) -> ModelOutput:
        if not torch.jit.is_tracing() and (x.shape[-1] % 16 or x.shape[-2] % 16):
            raise ValueError(f"input height and width must be multiples of 16, got {tuple(x.shape[-2:])}")
        logits, roi, _ = self.forward_with_features(x)
        return ModelOutput(logits, roi)
