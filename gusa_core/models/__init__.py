"""The GuSA model family: build a variant by name, count it, describe it.

Every model's ``forward(x)`` returns :class:`ModelOutput` ``(logits, roi)``;
models carry ``variant``, ``has_roi``, ``cam_layer``, ``num_classes``, ``stride``
and ``pretrained_source``. Inputs must have height and width divisible by 16.
"""

from __future__ import annotations

import os

from ..models_registry import DEFAULT_VARIANT, DESCRIPTIONS, ROI_VARIANTS, VARIANT_NAMES
from ._blocks import GuSABase, ModelOutput
from .baselines import AttentionGateNet, DenseNetBaseline, attention_gate, baseline
from .gusa import GuSANet, fa, fa_guroi, fa_gusa, guroi, gusa, rga
from .info import TABLE_I, count_gflops, info_dict, parameter_counts, table_i_residual
from .weights import IMAGENET_WEIGHTS_FILENAME, apply_pretrained, imagenet_weights_path, load_trunk_weights

__all__ = [
    "VARIANTS",
    "VARIANT_NAMES",
    "DEFAULT_VARIANT",
    "ROI_VARIANTS",
    "DESCRIPTIONS",
    "ModelOutput",
    "GuSABase",
    "GuSANet",
    "DenseNetBaseline",
    "AttentionGateNet",
    "build_model",
    "parameter_counts",
    "table_i_residual",
    "count_gflops",
    "info_dict",
    "TABLE_I",
    "IMAGENET_WEIGHTS_FILENAME",
    "imagenet_weights_path",
    "load_trunk_weights",
]

VARIANTS = VARIANT_NAMES

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
        One of :data:`VARIANTS`.
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
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}") from None
    model = builder(num_classes=num_classes)
    model.pretrained_source = apply_pretrained(model, pretrained)
    return model
