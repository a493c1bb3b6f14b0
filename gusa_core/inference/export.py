"""ONNX export of the GuSA models and an onnxruntime wrapper.

The exported graph has one input, ``input`` (float32 NCHW, ImageNet-normalised,
dynamic batch), and these outputs:

``logits``     (B, C) class scores before the softmax.
``attention``  (B, 1, h, w) in [0, 1]: the RoI map ỹ for the RoI variants; for
               the others the class activation map of the *predicted* class,
               which equals its Grad-CAM because their heads are linear
               (GAP + linear layer), normalised like pytorch-grad-cam.
``cam``        (B, C, h, w), the others only: the maps of every class, for a
               caller that wants another class than the prediction.

The classic TorchScript exporter (``dynamo=False``) is used: it takes seconds
and needs nothing beyond torch and onnx. torch (with :mod:`.gradcam`) and
onnxruntime are imported inside the functions: the predictor imports this
module on its CPU path, where loading only onnxruntime matters.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..checkpoint import load_model
from ..errors import CheckpointError
from ..runs import fold_dir

__all__ = ["ONNX_OPSET", "export_model_onnx", "OnnxModel", "export_onnx"]

ONNX_OPSET = 17


def _export_wrapper(model):
    import torch
    from torch import nn

    from .gradcam import cam_from_features

    class _Exported(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            logits, roi, features = self.inner.forward_with_features(x)
            if roi is not None:
                return logits, roi
            cam = cam_from_features(features, self.inner.linear_cam_weight())
            index = logits.argmax(dim=1, keepdim=True)[:, :, None, None].expand_as(cam[:, :1])
            return logits, torch.gather(cam, 1, index), cam

    return _Exported(model)


def export_model_onnx(model, path: str | os.PathLike, *, input_size=(512, 384), dynamic_batch: bool = True) -> Path:
    """Export ``model`` (in eval mode, on the CPU) to an ONNX file, atomically.

    Parameters
    ----------
    model : GuSABase
        A model of the family; it is not modified (a CPU copy is exported when needed).
    path : path-like
        The ``.onnx`` file to write.
    input_size : (int, int)
        (width, height) of the traced input; the graph is specialised to it.
    dynamic_batch : bool
        Leave the batch dimension free.

    Returns
    -------
    Path
        ``path``.
    """
    import copy

    import torch

    if not model.has_roi and model.linear_cam_weight() is None:
        raise ValueError(f"variant {model.variant!r} has neither RoI map nor linear head to export attention from")
    width, height = (int(v) for v in input_size)
    was_training = model.training
    exported = model
    if next(model.parameters()).device.type != "cpu":
        exported = copy.deepcopy(model).cpu()
    wrapper = _export_wrapper(exported).eval()
    names = ["logits", "attention"] + ([] if model.has_roi else ["cam"])
    axes = {name: {0: "batch"} for name in ["input", *names]} if dynamic_batch else None
    x = torch.zeros(1, 3, height, width)

    def _write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (x,),
                tmp,
                input_names=["input"],
                output_names=names,
                dynamic_axes=axes,
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,
            )

    try:
        return atomic_write(path, _write, suffix=".onnx")
    finally:
        model.train(was_training)


class OnnxModel:
    """An exported model run by onnxruntime on the CPU with all graph optimisations.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file.
    threads : int, optional
        Intra-op threads; the number of CPU cores if None.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        # No busy-waiting between batches: the GUI and the decoder thread share these cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise CheckpointError(self.path, f"not a loadable ONNX model ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x) -> dict[str, np.ndarray]:
        """Run the model on ``x``, float32 NCHW (ndarray or CPU tensor); returns name → array."""
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        x = np.ascontiguousarray(x, dtype=np.float32)
        return dict(zip(self.output_names, self.session.run(self.output_names, {self.input_name: x})))


def export_onnx(run_dir: str | os.PathLike, path: str | os.PathLike, *, fold: int = 0) -> Path:
    """Export one fold model of a training run to ONNX.

    Parameters
    ----------
    run_dir : path-like
        A run folder (``fold-<fold>/`` inside it is used) or a fold folder or model file.
    path : path-like
        The ``.onnx`` file to write.
    fold : int
        Which fold of a run folder.

    Returns
    -------
    Path
        ``path``.
    """
    run_dir = Path(run_dir)
    source = fold_dir(run_dir, fold) if fold_dir(run_dir, fold).is_dir() else run_dir
    model, meta = load_model(source, device="cpu")
    input_size = tuple(meta.get("input_size") or (512, 384))
    return export_model_onnx(model.eval(), path, input_size=input_size)
