"""The exported ONNX graph run by onnxruntime on the CPU (fp32).

The session options are the product's since the ONNX backend was added
(:class:`gusa_core.inference.export.OnnxModel`): every graph optimisation, one
intra-op thread per core, and no spinning between calls, because the GUI and
the decoding thread share those cores.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, GusaError
from .cpu import choose_precision, cpu_info, usable_cores

__all__ = ["OnnxRuntimeEngine"]


class OnnxRuntimeEngine:
    """An ONNX model run by onnxruntime's CPU provider, in fp32.

    Parameters
    ----------
    onnx_path : path-like
        The ``.onnx`` file.
    precision : {"auto", "fp32"}
        onnxruntime runs fp32 here; ``"bf16"`` is refused.
    threads : int, optional
        Intra-op threads; every core this process may use if None.
    cache_dir : ignored
        Accepted so that every engine is built with the same arguments.

    Attributes
    ----------
    name, precision, reason, device_name, output_names
        As for :class:`~gusa_core.engines.openvino.OpenVinoEngine`.
    """

    name = "onnxruntime"

    def __init__(self, onnx_path, *, precision: str = "auto", threads: int | None = None, cache_dir=None,
                 cache: bool = True):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise GusaError("onnxruntime is not installed: pip install 'onnxruntime>=1.18'") from exc

        precision = (precision or "auto").lower()
        if precision == "auto":
            self.precision, self.reason = choose_precision(cpu_info(), engine=self.name)
        elif precision == "fp32":
            self.precision, self.reason = "fp32", "fp32 asked for"
        else:
            raise GusaError(f"onnxruntime runs fp32 on the CPU, not {precision!r}")
        self.path = Path(onnx_path)
        self.threads = int(threads or usable_cores())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise CheckpointError(self.path, f"not a loadable ONNX model ({exc})") from exc
        self.device_name = cpu_info().model
        self.version = ort.__version__
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on ``batch``, float32 of shape (B, 3, H, W); returns output name → array."""
        if hasattr(batch, "detach"):
            batch = batch.detach().cpu().numpy()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4:
            raise GusaError(f"expected a batch of shape (B, 3, H, W), got {x.shape}")
        with self._lock:
            outs = self.session.run(self.output_names, {self.input_name: x})
        return dict(zip(self.output_names, outs))

    __call__ = run

    def submit(self, batch: np.ndarray):
        """Run ``batch`` now and return ``wait() -> outputs`` (the interface of :meth:`OpenVinoEngine.submit`)."""
        out = self.run(batch)
        return lambda: out

    def __repr__(self) -> str:
        return f"OnnxRuntimeEngine({str(self.path)!r}, threads={self.threads})"

