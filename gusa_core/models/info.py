"""Parameter counts against the paper's Table I, FLOPs and ``gusa info``.

Three counting conventions matter (see GUSA.md): *trainable* parameters
(PyTorch's default), *with BN statistics* (plus every BatchNorm running mean
and variance, what Keras' ``count_params()`` reports; ``num_batches_tracked``
is not a statistic and not counted) and *without BN* (BatchNorm excluded).
"""

from __future__ import annotations

from ..models_registry import DESCRIPTIONS, ROI_VARIANTS, VARIANT_NAMES
from .factory import build_model

__all__ = ["TABLE_I", "parameter_counts", "table_i_residual", "count_gflops", "info_dict"]

#: Parameter counts published in Table I of the paper, per variant.
TABLE_I = {
    "baseline": 12_332_740,
    "fa": 7_022_792,
    "guroi": 6_483_013,
    "fa-guroi": 7_024_844,
    "gusa": 6_483_013,
    "fa-gusa": 7_024_844,
    "attention-gate": 19_368_390,
    "rga": 7_024_844,
}

_CONVENTIONS = ("parameters", "parameters_with_bn_stats", "parameters_without_bn")


def parameter_counts(model) -> dict:
    """Count ``model``'s parameters three ways.

    Returns
    -------
    dict
        ``parameters`` (all learnable parameters), ``parameters_with_bn_stats``
        (plus BatchNorm running means and variances) and ``parameters_without_bn``
        (BatchNorm weights and biases excluded).
    """
    from torch import nn

    learnable = sum(p.numel() for p in model.parameters())
    bn_params = bn_stats = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            bn_params += sum(p.numel() for p in module.parameters(recurse=False))
            bn_stats += sum(b.numel() for b in (module.running_mean, module.running_var) if b is not None)
    return {
        "parameters": learnable,
        "parameters_with_bn_stats": learnable + bn_stats,
        "parameters_without_bn": learnable - bn_params,
    }


def table_i_residual(variant: str, counts: dict) -> tuple[int, str]:
    """The smallest signed difference ``count - Table I`` over the three conventions, and its convention."""
    table = TABLE_I[variant]
    name = min(_CONVENTIONS, key=lambda k: (abs(counts[k] - table), _CONVENTIONS.index(k)))
    return counts[name] - table, name


def count_gflops(model, input_size=(512, 384)) -> float:
    """FLOPs (2 x multiply-accumulates of convolutions and matrix products) of one image, in GFLOP.

    ``input_size`` is (width, height). The model may live on the ``meta`` device.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    width, height = input_size
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, height, width, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(x)
    return counter.get_total_flops() / 1e9


def info_dict(variant: str, *, input_size=(512, 384)) -> dict:
    """Describe a variant: layers, parameter counts against Table I, ``bp`` shape and cost.

    Parameters
    ----------
    variant : str
        One of :data:`gusa_core.models_registry.VARIANT_NAMES`.
    input_size : (int, int)
        Network input (width, height), multiples of 16.

    Returns
    -------
    dict
        ``variant``, ``description``, the three counts of :func:`parameter_counts`,
        ``table_i``, ``table_i_residual`` (signed, the smallest of the three),
        ``table_i_residual_counting``, ``bp_shape`` ([channels, M, N] of the
        attention/CAM layer), ``stride``, ``gflops`` (per image), ``has_roi``,
        ``attention_kind`` (``"roi"`` or ``"gradcam"``), ``input_size``.
    """
    import torch

    if variant not in VARIANT_NAMES:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANT_NAMES)}")
    width, height = (int(v) for v in input_size)
    if width % 16 or height % 16:
        raise ValueError(f"input size {width}x{height}: width and height must be multiples of 16")
    with torch.device("meta"):
        model = build_model(variant)
    counts = parameter_counts(model)
    residual, convention = table_i_residual(variant, counts)

    shape = {}

    def _record_shape(module, args, output):
        shape["bp"] = tuple(output.shape[1:])

    hook = model.cam_layer.register_forward_hook(_record_shape)
    gflops = count_gflops(model, (width, height))
    hook.remove()
    return {
        "variant": variant,
        "description": DESCRIPTIONS[variant],
        **counts,
        "table_i": TABLE_I[variant],
        "table_i_residual": residual,
        "table_i_residual_percent": round(100.0 * residual / TABLE_I[variant], 4),
        "table_i_residual_counting": convention,
        "input_size": [width, height],
        "bp_shape": list(shape["bp"]),
        "stride": model.stride,
        "gflops": round(gflops, 3),
        "has_roi": model.has_roi,
        "attention_kind": "roi" if variant in ROI_VARIANTS else "gradcam",
    }
