"""The GuSA model family: build a variant by name, count it, describe it.

Every model's ``forward(x)`` returns :class:`ModelOutput` ``(logits, roi)``;
models carry ``variant``, ``has_roi``, ``cam_layer``, ``num_classes``, ``stride``
and ``pretrained_source``. Inputs must have height and width divisible by 16.
"""

from __future__ import annotations

from ..models_registry import DEFAULT_VARIANT, DESCRIPTIONS, ROI_VARIANTS, VARIANT_NAMES
from ._blocks import GuSABase, ModelOutput
from .baselines import AttentionGateNet, DenseNetBaseline
from .factory import build_model
from .gusa import GuSANet
from .info import TABLE_I, count_gflops, info_dict, parameter_counts, table_i_residual
from .weights import IMAGENET_WEIGHTS_FILENAME, imagenet_weights_path, load_trunk_weights

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
