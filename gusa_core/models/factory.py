"""Building a model of the family by its variant name."""

from __future__ import annotations

import os

from ..models_registry import DEFAULT_VARIANT, VARIANT_NAMES
from ._blocks import GuSABase
from .baselines import attention_gate, baseline
from .gusa import fa, fa_guroi, fa_gusa, guroi, gusa, rga
from .weights import apply_pretrained

__all__ = ["build_model"]

_BUILDERS = {
    "baseline": baseline,
    "fa": fa,
    "guroi": guroi,
    "fa-guroi": fa_guroi,
    "gusa": gusa,
    "fa-gusa": fa_gusa,
    "attention-gate": attention_gate,
    "rga": rga,
}


def build_model(
    variant: str = DEFAULT_VARIANT,
    *,
    num_classes: int = 4,
    pretrained: str | os.PathLike = "none",
    progress: bool = False,
) -> GuSABase:
    """Build a model of the family.

    Parameters
    ----------
    variant : str
        One of :data:`~gusa_core.models_registry.VARIANT_NAMES`.
    num_classes : int
        Classifier outputs.
    pretrained : {"none", "auto"} or path-like
        Trunk initialisation: random; torchvision's cached ImageNet file if it
        exists (never downloaded; random with a warning otherwise); or a
        DenseNet-169 state dict file (``.pth`` or ``.safetensors``).
    progress : bool
        Accepted for symmetry with torchvision; nothing is downloaded.

    Returns
    -------
    GuSABase
        The model, in training mode, with ``pretrained_source`` set.

    Raises
    ------
    ValueError
        Unknown variant.
    gusa_core.errors.CheckpointError
        A weights file that cannot be read or does not fit the trunk.
    """
    try:
        builder = _BUILDERS[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANT_NAMES)}") from None
    model = builder(num_classes=num_classes)
    model.pretrained_source = apply_pretrained(model, pretrained)
    return model
