"""The exported ONNX graph compiled by OpenVINO for the CPU.

OpenVINO reads the same ``model.onnx`` that onnxruntime runs (one input,
``input``; outputs ``logits``, ``attention`` and, for the linear-head variants,
``cam``: see :mod:`gusa_core.inference.export`) and compiles it for the CPU in hand, in
fp32 or bf16 (:func:`gusa_core.engines.cpu.choose_precision`). The compiled
blob is cached beside the ONNX file, so the second start skips compilation.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, GusaError
from .cpu import PRECISIONS, choose_precision, cpu_info, usable_cores

__all__ = ["OpenVinoEngine", "OV_CACHE_DIRNAME"]

OV_CACHE_DIRNAME = "ov-cache"
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


class OpenVinoEngine:
    """An ONNX model compiled by OpenVINO on the CPU.

    Parameters
    ----------
    onnx_path : path-like
        The ``.onnx`` file (dynamic batch axis, as :func:`gusa_core.inference.export.export_model_onnx` writes it).
    precision : {"auto", "fp32", "bf16"}
        ``"auto"`` follows :func:`~gusa_core.engines.cpu.choose_precision`
        (and so ``GUSA_PRECISION``). The precision is always set explicitly:
        OpenVINO would otherwise choose bf16 by itself on any CPU that has it.
    threads : int, optional
        Inference threads; every core this process may use if None.
    cache_dir : path-like, optional
        Where OpenVINO caches the compiled model; ``ov-cache/`` beside the
        ONNX file if None.
    cache : bool
        Cache the compiled model at all.
    hint : {"THROUGHPUT", "LATENCY"}
        OpenVINO's performance hint. THROUGHPUT (one stream per core or
        two, a batch split among them) beat LATENCY (one stream over every
        core) at batch 1 and 4, in fp32 and bf16, on a 2-core EPYC shared
        with other work, the product's own situation (GUI and decoding threads
        share the cores): see ``benchmarks/bench_engines.py``.

    Attributes
    ----------
    name : str
        ``"openvino"``.
    precision : {"fp32", "bf16"}
        The precision OpenVINO reports after compiling.
    reason : str
        Why this precision.
    device_name : str
        OpenVINO's name of the CPU.
    output_names : list of str
        In the ONNX file's order.
    """

    name = "openvino"

    def __init__(self, onnx_path, *, precision: str = "auto", threads: int | None = None,
                 cache_dir=None, cache: bool = True, hint: str = "THROUGHPUT"):
        try:
            import openvino as ov
        except ImportError as exc:
            raise GusaError("OpenVINO is not installed: pip install 'openvino>=2024.0'") from exc

        self.path = Path(onnx_path)
        precision = (precision or "auto").lower()
        if precision == "auto":
            precision, reason = choose_precision(cpu_info(), engine="openvino")
        elif precision in PRECISIONS:
            reason = f"{precision} asked for"
        else:
            raise GusaError(f"precision {precision!r} is not understood: use auto, fp32 or bf16")
        if hint not in ("LATENCY", "THROUGHPUT"):
            raise GusaError(f"performance hint {hint!r} is not understood: use LATENCY or THROUGHPUT")
        if not self.path.is_file():
            raise CheckpointError(self.path, "no such ONNX file")
        self.threads = int(threads or usable_cores())
        config = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
            "PERFORMANCE_HINT": hint,
            "INFERENCE_NUM_THREADS": self.threads,
        }
        self.cache_dir = None
        if cache:
            self.cache_dir = Path(cache_dir) if cache_dir is not None else self.path.parent / OV_CACHE_DIRNAME
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                _prune_cache(self.cache_dir, self.path)
                config["CACHE_DIR"] = str(self.cache_dir)
            except OSError:  # a read-only run folder: compile every time rather than fail
                self.cache_dir = None
        core = ov.Core()
        try:
            # compiling from the path lets a cache hit skip reading the ONNX graph
            self._compiled = core.compile_model(str(self.path), "CPU", config)
        except RuntimeError as exc:
            raise CheckpointError(self.path, f"OpenVINO cannot compile this ONNX model ({_first_line(exc)})") from exc
        got = str(self._compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        self.precision = "bf16" if "bf16" in got or "bfloat16" in got else "fp32"
        if self.precision != precision:
            reason = f"{precision} asked for but OpenVINO compiled {self.precision} on this CPU"
        self.reason = reason
        self.device_name = str(core.get_property("CPU", "FULL_DEVICE_NAME"))
        self.version = ov.get_version()
        inputs = self._compiled.inputs
        if len(inputs) != 1:
            raise CheckpointError(self.path, f"expected one input, found {len(inputs)}")
        self.input_name = inputs[0].get_any_name()
        self._outputs = list(self._compiled.outputs)
        self.output_names = [o.get_any_name() for o in self._outputs]
        # LATENCY: one request over every core; THROUGHPUT: one request per stream, and a batch is split among them
        n_requests = max(1, int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self._requests = [self._compiled.create_infer_request() for _ in range(n_requests)]
        self._lock = threading.Lock()  # the requests serve one caller at a time

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model.

        Parameters
        ----------
        batch : ndarray of shape (B, 3, H, W)
            float32, pre-processed as for training; any B >= 1.

        Returns
        -------
        dict of str to ndarray
            Output name → float32 array (copies: the next call does not overwrite them).
        """
        if hasattr(batch, "detach"):  # a CPU tensor, as OnnxModel accepts
            batch = batch.detach().cpu().numpy()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4:
            raise GusaError(f"expected a batch of shape (B, 3, H, W), got {x.shape}")
        with self._lock:
            if len(x) == 1 or len(self._requests) == 1:
                result = self._requests[0].infer({0: x}, share_inputs=False, share_outputs=False)
                return {name: np.asarray(result[out], dtype=np.float32)
                        for name, out in zip(self.output_names, self._outputs)}
            chunks = np.array_split(x, min(len(x), len(self._requests)))
            requests = self._requests[:len(chunks)]
            for request, chunk in zip(requests, chunks):
                request.start_async({0: np.ascontiguousarray(chunk)}, share_inputs=False)
            for request in requests:
                request.wait()
            return {name: np.concatenate([np.array(r.get_tensor(out).data, dtype=np.float32) for r in requests])
                    for name, out in zip(self.output_names, self._outputs)}

    __call__ = run

    def __repr__(self) -> str:
        return f"OpenVinoEngine({str(self.path)!r}, precision={self.precision!r}, threads={self.threads})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _prune_cache(cache_dir: Path, onnx_path: Path) -> None:
    """Delete compiled blobs older than the ONNX file: they belong to weights exported before it."""
    newest = onnx_path.stat().st_mtime_ns
    for blob in cache_dir.glob("*.blob"):
        try:
            if blob.stat().st_mtime_ns < newest:
                blob.unlink()
        except OSError:  # another process pruned it, or the folder is read-only: the cache is only a cache
            pass
