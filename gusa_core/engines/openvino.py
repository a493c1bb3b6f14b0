"""The exported ONNX graph compiled by OpenVINO for the CPU.

OpenVINO reads the same ``model.onnx`` that onnxruntime runs (one input,
``input``; outputs ``logits``, ``attention`` and, for the linear-head variants,
``cam``: see :mod:`gusa_core.inference.export`) and compiles it for the CPU in hand, in
fp32 or bf16 (:func:`gusa_core.engines.cpu.choose_precision`), or runs its
int8 quantisation (:mod:`gusa_core.engines.int8`). The compiled blob is
cached beside the ONNX file, so the second start skips compilation. How a
call spends the cores (one stream, or several) follows the batch size:
:mod:`gusa_core.engines.modes`.

OpenVINO's CPU plugin, when it is created (the first compile on an
``ov.Core``), installs an alternate signal stack (``sigaltstack``) on the
calling thread in memory of its own, and frees that memory with the plugin.
The thread keeps pointing at it: the next signal it handles on the
alternate stack (every handler Python installs asks for it; torch's
DataLoader installs one for SIGCHLD, so the end of any child process
delivers one) is written into freed memory, and the process dies of SIGSEGV
(``si_code`` SI_KERNEL) or has its heap silently corrupted. Compiling
therefore runs inside :func:`keep_signal_stack`, which puts the thread's
previous alternate stack back.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, GusaError
from .cpu import PRECISIONS, choose_precision, cpu_info, cpu_precision, usable_cores
from .modes import HINTS, LATENCY, THROUGHPUT, choose_mode, describe_rule, machine_load

__all__ = ["OpenVinoEngine", "OV_CACHE_DIRNAME", "keep_signal_stack", "signal_stack"]

OV_CACHE_DIRNAME = "ov-cache"
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: what is not quantised runs fp32


class OpenVinoEngine:
    """An ONNX (or OpenVINO IR) model compiled by OpenVINO on the CPU.

    Parameters
    ----------
    onnx_path : path-like
        The ``.onnx`` file (dynamic batch axis, as :func:`gusa_core.inference.export.export_model_onnx`
        writes it), or an OpenVINO IR ``.xml`` (the int8 model of :mod:`gusa_core.engines.int8`).
    precision : {"auto", "fp32", "bf16", "int8"}
        ``"auto"`` follows :func:`~gusa_core.engines.cpu.choose_precision`
        (and so ``GUSA_PRECISION``). The precision is always set explicitly:
        OpenVINO would otherwise choose bf16 by itself on any CPU that has it.
        ``"int8"`` is for a quantised IR: its quantised layers run int8, the
        rest fp32.
    threads : int, optional
        Inference threads; every core this process may use if None.
    cache_dir : path-like, optional
        Where OpenVINO caches the compiled model; ``ov-cache/`` beside the
        model file if None.
    cache : bool
        Cache the compiled model at all.
    hint : {"auto", "LATENCY", "THROUGHPUT"}
        OpenVINO's performance hint. ``"auto"`` chooses per call
        (:func:`gusa_core.engines.modes.choose_mode`): LATENCY (one stream
        over every core) is compiled at once, THROUGHPUT (several streams)
        when a batch first asks for it, and each call runs on the one that
        suits its batch size.

    Attributes
    ----------
    name : str
        ``"openvino"``.
    precision : {"fp32", "bf16", "int8"}
        The precision OpenVINO reports after compiling.
    reason : str
        Why this precision.
    device_name : str
        OpenVINO's name of the CPU.
    output_names : list of str
        In the model file's order.
    hint : {"auto", "LATENCY", "THROUGHPUT"}
    streams : int or None
        Streams of the THROUGHPUT-compiled model (None until it is compiled).
    last_mode : tuple of str or None
        ``(hint, reason)`` of the last call.
    """

    name = "openvino"

    def __init__(self, onnx_path, *, precision: str = "auto", threads: int | None = None,
                 cache_dir=None, cache: bool = True, hint: str = "auto"):
        try:
            import openvino as ov
        except ImportError as exc:
            raise GusaError("OpenVINO is not installed: pip install 'openvino>=2024.0'") from exc

        self.path = Path(onnx_path)
        precision = (precision or "auto").lower()
        if precision == "auto":
            precision, reason = choose_precision(cpu_info(), engine="openvino")
            if precision == "int8" and self.path.suffix.lower() != ".xml":
                precision, why = cpu_precision(cpu_info())
                reason = f"int8 needs the quantised model (gusa_core.engines.int8), not {self.path.name}: {why}"
        elif precision in PRECISIONS:
            reason = f"{precision} asked for"
        else:
            raise GusaError(f"precision {precision!r} is not understood: use auto, {', '.join(PRECISIONS)}")
        if precision == "int8" and self.path.suffix.lower() != ".xml":
            raise GusaError("int8 runs a quantised OpenVINO model (.xml): see gusa_core.engines.int8")
        hint = "auto" if str(hint).lower() == "auto" else str(hint).upper()
        if hint not in HINTS:
            raise GusaError(f"performance hint {hint!r} is not understood: use auto, LATENCY or THROUGHPUT")
        if not self.path.is_file():
            raise CheckpointError(self.path, f"no such {'ONNX' if self.path.suffix.lower() == '.onnx' else 'model'} file")
        self.hint = hint
        self.threads = int(threads or usable_cores())
        self._config = {
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
            "INFERENCE_NUM_THREADS": self.threads,
        }
        self.cache_dir = None
        if cache:
            is_ir = self.path.suffix.lower() == ".xml"  # an int8 model, itself kept in ov-cache/
            default = self.path.parent if is_ir else self.path.parent / OV_CACHE_DIRNAME
            self.cache_dir = Path(cache_dir) if cache_dir is not None else default
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                if not is_ir:
                    _prune_cache(self.cache_dir, self.path)
                self._config["CACHE_DIR"] = str(self.cache_dir)
            except OSError:  # a read-only run folder: compile every time rather than fail
                self.cache_dir = None
        self._lock = threading.Lock()  # guards the compiled models and the free requests
        self._models: dict[str, object] = {}
        self._free: dict[str, list] = {}  # idle infer requests per hint
        self.streams: int | None = None
        self.last_mode: tuple[str, str] | None = None
        try:
            with keep_signal_stack():  # see the module notes: the CPU plugin replaces this thread's
                self._core = ov.Core()
                self.device_name = str(self._core.get_property("CPU", "FULL_DEVICE_NAME"))
        except RuntimeError as exc:
            raise CheckpointError(self.path, f"OpenVINO cannot start its CPU plugin ({_first_line(exc)})") from exc
        compiled = self._compiled(THROUGHPUT if hint == THROUGHPUT else LATENCY)
        got = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        self.precision = "bf16" if "bf16" in got or "bfloat16" in got else "fp32"
        if precision == "int8" and self.precision == "fp32":
            self.precision = "int8"
        if self.precision != precision:
            reason = f"{precision} asked for but OpenVINO compiled {self.precision} on this CPU"
        self.reason = reason
        self.version = ov.get_version()
        inputs = compiled.inputs
        if len(inputs) != 1:
            raise CheckpointError(self.path, f"expected one input, found {len(inputs)}")
        self.input_name = inputs[0].get_any_name()
        self.output_names = [o.get_any_name() for o in compiled.outputs]

    def _compiled(self, hint: str):
        """The model compiled with ``hint`` (compiled on first use; OpenVINO's cache makes that quick later)."""
        compiled = self._models.get(hint)
        if compiled is None:
            config = dict(self._config, PERFORMANCE_HINT=hint)
            try:
                with keep_signal_stack():
                    # compiling from the path lets a cache hit skip reading the graph
                    compiled = self._core.compile_model(str(self.path), "CPU", config)
            except RuntimeError as exc:
                raise CheckpointError(self.path, f"OpenVINO cannot compile this model ({_first_line(exc)})") from exc
            self._models[hint] = compiled
            self._free[hint] = []
            if hint == THROUGHPUT:
                self.streams = max(1, int(compiled.get_property("NUM_STREAMS")))
        return compiled

    def mode_for(self, batch: int) -> tuple[str, str]:
        """The hint a call of ``batch`` images runs with, and why (without running it)."""
        if self.hint != "auto":
            return self.hint, f"the {self.hint} hint asked for"
        return choose_mode(batch, cores=self.threads, streams=self.streams, load=machine_load())

    def describe_mode(self) -> str:
        """How calls use the cores, in one sentence (the chosen hint(s) and the rule)."""
        if self.hint == LATENCY:
            return f"LATENCY hint: one stream over {self.threads} threads"
        if self.hint == THROUGHPUT:
            return f"THROUGHPUT hint: {self.streams} streams over {self.threads} threads"
        text = describe_rule(self.threads, self.streams)
        if self.last_mode is not None:
            text += f"; last call: {self.last_mode[0]} ({self.last_mode[1]})"
        return text

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
        return self.submit(batch)()

    def submit(self, batch: np.ndarray):
        """Start the model on ``batch`` and return at once; call the result to wait for the outputs.

        Calls may overlap: a second batch submitted before the first is
        collected queues behind it on the same streams, so the cores never
        wait for the caller between two batches (a folder classified batch
        after batch: :func:`gusa_core.inference.classify_paths`).

        Parameters
        ----------
        batch : ndarray of shape (B, 3, H, W)
            As for :meth:`run`; it must stay unchanged until collected.

        Returns
        -------
        callable
            ``wait() -> dict of str to ndarray``, what :meth:`run` returns; call it once.
        """
        if hasattr(batch, "detach"):  # a CPU tensor, as OnnxModel accepts
            batch = batch.detach().cpu().numpy()
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4 or len(x) == 0:
            raise GusaError(f"expected a batch of shape (B, 3, H, W), got {x.shape}")
        with self._lock:
            hint, why = self.mode_for(len(x))
            if hint == THROUGHPUT and self.hint == "auto" and self.streams is None:
                self._compiled(THROUGHPUT)  # now the stream count is known: ask the rule again
                hint, why = self.mode_for(len(x))
            outputs = self._compiled(hint).outputs
            self.last_mode = (hint, why)
            # LATENCY: one request for the batch; THROUGHPUT: one per image, each taken by whichever stream is free
            requests = self._take(hint, 1 if hint == LATENCY else len(x))
        try:
            # the caller's array is only read until collected: no copy of the input
            if hint == LATENCY:
                requests[0].start_async({0: x}, share_inputs=True)
            else:
                for i, request in enumerate(requests):
                    request.start_async({0: x[i:i + 1]}, share_inputs=True)
        except Exception:
            for request in requests:  # the ones started finish before they are reused
                with contextlib.suppress(Exception):
                    request.wait()
            self._give(hint, requests)
            raise
        done = []

        def wait() -> dict[str, np.ndarray]:
            if done:
                raise GusaError("this batch's outputs were already collected")
            done.append(True)
            return self._collect(hint, requests, outputs, x)

        return wait

    def _take(self, hint: str, n: int) -> list:
        free = self._free[hint]
        while len(free) < n:
            free.append(self._models[hint].create_infer_request())
        taken, self._free[hint] = free[:n], free[n:]
        return taken

    def _collect(self, hint: str, requests: list, outputs, inputs=None) -> dict[str, np.ndarray]:
        """Wait for ``requests``, copy their outputs out and give them back; ``inputs``, which they read
        without a copy, is held until then (the closure of :meth:`submit` passes it)."""
        try:
            for request in requests:
                request.wait()
            return {name: np.concatenate([np.array(r.get_tensor(out).data, dtype=np.float32) for r in requests])
                    for name, out in zip(self.output_names, outputs)}
        finally:
            self._give(hint, requests)

    def _give(self, hint: str, requests: list) -> None:
        with self._lock:
            self._free[hint].extend(requests)

    __call__ = run

    def __repr__(self) -> str:
        return (f"OpenVinoEngine({str(self.path)!r}, precision={self.precision!r}, threads={self.threads}, "
                f"hint={self.hint!r})")


# ------------------------------------------------------------ the thread's alternate signal stack
class _StackLinux(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


class _StackBSD(ctypes.Structure):  # macOS orders the fields differently
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_size", ctypes.c_size_t), ("ss_flags", ctypes.c_int)]


_STACK_T, _SS_DISABLE = (_StackBSD, 4) if sys.platform == "darwin" else (_StackLinux, 2)


def _libc():
    if sys.platform.startswith("win"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.sigaltstack  # noqa: B018 - present on every POSIX libc; absent means nothing to guard
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def signal_stack() -> tuple[int, int, int] | None:
    """This thread's alternate signal stack as ``(address, size, flags)``; None where there is no ``sigaltstack``."""
    if _LIBC is None:
        return None
    current = _STACK_T()
    if _LIBC.sigaltstack(None, ctypes.byref(current)) != 0:
        return None
    return int(current.ss_sp or 0), int(current.ss_size), int(current.ss_flags)


@contextlib.contextmanager
def keep_signal_stack():
    """Restore the calling thread's alternate signal stack after the block, should the block replace it.

    OpenVINO's CPU plugin installs one that it frees later (see the module
    notes). A no-op where the C library has no ``sigaltstack`` (Windows).
    """
    before = signal_stack()
    try:
        yield
    finally:
        after = signal_stack()
        if before is not None and after is not None and after != before:
            address, size, flags = before
            old = _STACK_T()
            if flags & _SS_DISABLE:
                old.ss_sp, old.ss_size, old.ss_flags = None, 0, _SS_DISABLE
            else:
                old.ss_sp, old.ss_size, old.ss_flags = address, size, 0
            _LIBC.sigaltstack(ctypes.byref(old), None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _prune_cache(cache_dir: Path, onnx_path: Path) -> None:
    """Delete compiled blobs and int8 models older than the ONNX file: they belong to weights exported before it."""
    newest = onnx_path.stat().st_mtime_ns
    for blob in [*cache_dir.glob("*.blob"), *cache_dir.glob("int8-*.xml"), *cache_dir.glob("int8-*.bin")]:
        try:
            if blob.stat().st_mtime_ns < newest:
                blob.unlink()
        except OSError:  # another process pruned it, or the folder is read-only: the cache is only a cache
            pass
