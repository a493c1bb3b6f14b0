"""ImageNet weights for the DenseNet-169 trunk: find them, never download them.

``pretrained="auto"`` looks for torchvision's own cache file of
``DenseNet169_Weights.IMAGENET1K_V1`` (``<torch hub dir>/checkpoints/densenet169-b2777c0a.pth``,
i.e. ``$TORCH_HOME/hub/checkpoints``); a file path loads a torchvision DenseNet-169
state dict from ``.pth`` (read with ``weights_only=True``, never unpickling
arbitrary objects) or ``.safetensors``.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

from ..errors import CheckpointError
from ..models_registry import IMAGENET_WEIGHTS_FILENAME, imagenet_weights_path  # torch-free, shared with the app

__all__ = [
    "IMAGENET_WEIGHTS_FILENAME",
    "imagenet_weights_path",
    "read_state_dict",
    "load_trunk_weights",
    "apply_pretrained",
]

log = logging.getLogger(__name__)


# torchvision's densenet.py: old checkpoints name "norm.1" what is now "norm1".
_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def read_state_dict(path: str | os.PathLike) -> dict:
    """Read a state dict of tensors from ``.pth``/``.pt`` (weights only) or ``.safetensors``.

    Raises
    ------
    CheckpointError
        The file is missing, unreadable or holds anything but tensors.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a bad file
        raise CheckpointError(path, f"not a readable weights file ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "does not hold a state dict of tensors")
    return state


def _renamed(state: dict) -> dict:
    """Apply torchvision's old-key remap and drop a ``module.`` (DataParallel) prefix."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = _OLD_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def load_trunk_weights(model, path: str | os.PathLike) -> dict:
    """Load a torchvision DenseNet-169 state dict into ``model.backbone``.

    Keys ``features.<layer>...`` (or bare ``<layer>...``) go to ``backbone.<layer>...``.
    Every trunk tensor must be present with the right shape (strict for the
    trunk); the rest of the file (deeper blocks, the ImageNet classifier) is ignored.

    Returns
    -------
    dict
        ``loaded`` (number of tensors), ``unused`` (keys of the file not used).

    Raises
    ------
    CheckpointError
        Missing trunk tensors or shape mismatches, naming the file.
    """
    state = _renamed(read_state_dict(path))
    if any(k.startswith("features.") for k in state):
        source = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        others = [k for k in state if not k.startswith("features.")]
    else:
        source, others = dict(state), []
    target = model.backbone.state_dict()
    # files older than BatchNorm's step counter (torchvision's own) have no num_batches_tracked
    for key, value in target.items():
        if key.endswith("num_batches_tracked") and key not in source:
            source[key] = value
    missing = [k for k in target if k not in source]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CheckpointError(path, f"not a DenseNet-169 state dict: {len(missing)} trunk tensors missing ({shown})")
    wrong = [f"{k} {tuple(source[k].shape)} != {tuple(v.shape)}" for k, v in target.items() if source[k].shape != v.shape]
    if wrong:
        raise CheckpointError(path, "tensor shapes do not fit DenseNet-169: " + "; ".join(wrong[:3]))
    model.backbone.load_state_dict({k: source[k] for k in target}, strict=True)
    unused = sorted(others + [f"features.{k}" for k in source if k not in target])
    log.debug("unused tensors of %s: %s", path, unused)
    return {"loaded": len(target), "unused": unused}


def apply_pretrained(model, pretrained) -> str:
    """Initialise ``model.backbone`` as ``pretrained`` asks and return the source.

    Parameters
    ----------
    pretrained : {"none", "auto"} or path-like
        ``"none"``: keep the random initialisation. ``"auto"``: torchvision's cached
        ImageNet file if present, else random with a warning. A path: that file.

    Returns
    -------
    str
        ``"random"``, ``"imagenet:<file>"`` or ``"file:<file>"``.
    """
    if pretrained is None or pretrained in ("none", "random", False):
        return "random"
    if pretrained == "auto":
        path = imagenet_weights_path()
        if not path.is_file():
            message = (
                f"ImageNet weights for DenseNet-169 not found at {path}; using random initialisation. "
                f"Put {IMAGENET_WEIGHTS_FILENAME} there or pass --pretrained FILE."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return "random"
        result = load_trunk_weights(model, path)
        log.info("loaded %d ImageNet trunk tensors from %s", result["loaded"], path)
        return f"imagenet:{path}"
    result = load_trunk_weights(model, pretrained)
    log.info("loaded %d trunk tensors from %s (%d unused)", result["loaded"], pretrained, len(result["unused"]))
    return f"file:{Path(pretrained)}"
