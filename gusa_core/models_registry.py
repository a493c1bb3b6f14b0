"""Names of the model variants and where the ImageNet weights live, importable without torch (CLI, app)."""

import os
import sys
from pathlib import Path

VARIANT_NAMES = ("baseline", "fa", "guroi", "fa-guroi", "gusa", "fa-gusa", "attention-gate", "rga")
DEFAULT_VARIANT = "fa-gusa"

#: Variants whose attention map is the RoI branch's output ỹ; the others use Grad-CAM.
ROI_VARIANTS = ("guroi", "fa-guroi", "gusa", "fa-gusa", "rga")

DESCRIPTIONS = {
    "baseline": "Baseline (B): DenseNet-169 classifier",
    "fa": "B + FA: multi-depth feature aggregation",
    "guroi": "B + GuRoI: RoI branch trained jointly, not applied",
    "fa-guroi": "B + FA + GuRoI",
    "gusa": "B + GuSA: RoI map multiplies the activations",
    "fa-gusa": "B + FA + GuSA (proposed)",
    "attention-gate": "Attention gates (Schlemper et al. 2019), unsupervised",
    "rga": "Region guided attention (Son et al. 2018), implicit region supervision",
}

#: File name of torchvision's DenseNet169_Weights.IMAGENET1K_V1 (the last part of its URL).
IMAGENET_WEIGHTS_FILENAME = "densenet169-b2777c0a.pth"


def imagenet_weights_path() -> Path:
    """Where torchvision caches the DenseNet-169 ImageNet weights, found or not.

    ``torch.hub.get_dir()/checkpoints`` — computed the way torch does
    (``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else
    ``~/.cache/torch/hub``) so that the app can show it without importing
    torch; a ``torch.hub.set_dir`` made by an already imported torch wins.
    """
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir()) / "checkpoints" / IMAGENET_WEIGHTS_FILENAME
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        torch_home = os.path.join(cache, "torch")
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints" / IMAGENET_WEIGHTS_FILENAME


__all__ = [
    "VARIANT_NAMES",
    "DEFAULT_VARIANT",
    "ROI_VARIANTS",
    "DESCRIPTIONS",
    "IMAGENET_WEIGHTS_FILENAME",
    "imagenet_weights_path",
]
