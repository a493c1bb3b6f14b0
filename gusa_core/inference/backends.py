"""Which engine runs a fold's model, and why: the predictor's side of :mod:`gusa_core.engines`.

Backends (``gusa predict --backend``): ``"auto"`` (the fastest engine this
CPU offers, :func:`gusa_core.engines.choose_engine`; torch on a GPU),
``"openvino"``, ``"onnxruntime"`` (``"onnx"``, its older name) and ``"torch"``.
The CPU engines run the fold's ``model.onnx``, exported once and re-exported
when the weights are newer; with a fresh export no torch is imported at all.
A reduced precision (bf16) is used only once it agreed with fp32 on the run's
validation images (generated tissue when the project is not at hand): see
:func:`gusa_core.engines.agreement.gate`.

Nothing here imports torch.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import onnx_cache_is_fresh, onnx_cache_path, read_model_meta, weights_path
from ..demo import DEMO_CLASSES, generate_tissue
from ..engines import create_engine, open_engine
from ..engines.agreement import RECORD_NAME, sha256_file
from ..errors import GusaError
from ..imageio import read_image
from ..project import Project
from ..project.slides import is_slide
from ..runs import project_candidates
from .export import ONNX_OPSET

__all__ = ["BACKENDS", "EngineInfo", "CPU", "normalize_backend", "resolve_device", "export_is_fresh", "export_settings",
           "validation_images", "calibration_images", "open_fold_engine", "engine_info"]

BACKENDS = ("auto", "openvino", "onnxruntime", "torch")
_ALIASES = {"onnx": "onnxruntime"}
#: Validation images the agreement gate classifies at most.
GATE_IMAGES = 8
#: Validation images int8 quantisation takes its statistics from at most.
CALIBRATION_IMAGES = 16


@dataclass(frozen=True)
class EngineInfo:
    """The engine a predictor runs, for ``gusa predict --json``, the About dialog and the Review panel.

    Attributes
    ----------
    backend : {"openvino", "onnxruntime", "torch"}
    precision : str
        ``"fp32"``, ``"bf16"``, ``"int8"``, or ``"fp16"`` (torch on CUDA).
    reason : str
        Why this engine and precision, including the agreement check's verdict,
        and how a call spends the cores (the ``mode``).
    device : str
        The processor's name.
    mode : str
        How OpenVINO runs a call: one stream or several, by batch size, and
        the rule (:mod:`gusa_core.engines.modes`); empty for the other backends.
    """

    backend: str
    precision: str
    reason: str
    device: str
    mode: str = ""

    def as_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class _CpuDevice:
    """The CPU, named like ``torch.device("cpu")`` for a predictor that never imports torch."""

    type: str = "cpu"

    def __str__(self) -> str:
        return "cpu"


CPU = _CpuDevice()


def normalize_backend(backend: str | None) -> str:
    """The backend's name in :data:`BACKENDS` (``"onnx"`` is ``"onnxruntime"``); GusaError if unknown."""
    name = (backend or "auto").strip().lower()
    name = _ALIASES.get(name, name)
    if name not in BACKENDS:
        raise GusaError(f"backend {backend!r} is not understood: use {', '.join(BACKENDS)}")
    return name


def _accelerator_possible() -> bool:
    """Whether a GPU torch could use may be here, judged without importing torch."""
    if sys.platform == "darwin":
        return os.uname().machine == "arm64"  # Metal (MPS)
    if sys.platform.startswith("win"):
        return Path(os.environ.get("SystemRoot", r"C:\Windows"), "System32", "nvcuda.dll").is_file()
    return Path("/proc/driver/nvidia/version").is_file() or Path("/dev/kfd").exists()


def resolve_device(device, backend: str):
    """The device to predict on; :data:`CPU` (torch not imported) where only the CPU can serve.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    backend : str
        A name from :data:`BACKENDS`.
    """
    name = str(device or "auto").lower()
    if backend != "torch" and (name == "cpu" or (name == "auto" and not _accelerator_possible())):
        return CPU
    try:
        from ..device import resolve_device as _torch_resolve
    except ImportError:
        if name in ("auto", "cpu") and backend != "torch":
            return CPU
        raise GusaError(f"torch is not installed: the {backend} backend on {name} needs it; use the CPU") from None
    return _torch_resolve(device)


def export_settings(meta: dict) -> dict:
    """The settings an ONNX export depends on besides the weights (recorded beside it)."""
    return {"input_size": [int(v) for v in meta["input_size"]], "opset": ONNX_OPSET}


def export_is_fresh(folder: str | os.PathLike, meta: dict | None = None) -> bool:
    """Whether the fold's ``model.onnx`` was exported from its current weights (by SHA-256, never mtime)."""
    try:
        meta = read_model_meta(folder) if meta is None else meta
    except GusaError:
        return False
    return onnx_cache_is_fresh(folder, export_settings(meta))


def _project_images(folder: Path, meta: dict, *, count: int, skip_gate: bool) -> list[np.ndarray]:
    wanted = [str(i) for i in meta.get("validation_ids") or []]
    if not wanted:
        return []
    for candidate in project_candidates(folder):
        try:
            project = Project.open(candidate)
        except (GusaError, OSError):
            continue
        records = {r.id: r for r in project.images}
        ids = [i for i in wanted if i in records and not is_slide(records[i])]
        gate_ids = ids[::max(1, len(ids) // GATE_IMAGES)][:GATE_IMAGES]
        if skip_gate:  # calibrate on other images than the gate checks, where the run has them
            ids = [i for i in ids if i not in set(gate_ids)] or gate_ids
            chosen = ids[::max(1, len(ids) // count)][:count]
        else:
            chosen = gate_ids
        images = []
        for image_id in chosen:
            try:
                images.append(read_image(project.image_path(image_id)))
            except (GusaError, OSError):
                continue
        return images
    return []


def _generated(meta: dict, *, per_class: int, seed: int) -> list[np.ndarray]:
    size = tuple(int(v) for v in meta["input_size"])
    labels = [c if c in DEMO_CLASSES else DEMO_CLASSES[i % len(DEMO_CLASSES)]
              for i, c in enumerate(meta.get("class_names") or DEMO_CLASSES)]
    return [generate_tissue(label, size=size, rng=seed + 1000 * i + j)[0]
            for i, label in enumerate(labels) for j in range(per_class)]


def validation_images(folder, meta: dict, prepare) -> tuple[np.ndarray, str]:
    """Pre-processed images for the agreement gate, and where they came from.

    Up to :data:`GATE_IMAGES` of the fold's validation images (``validation_ids``
    in its ``model.json``) from the project the run was trained on, when that
    project is found; otherwise two generated tissue images per class.

    Parameters
    ----------
    folder : path-like
        The fold folder.
    meta : dict
        Its ``model.json``.
    prepare : callable
        ``image (H, W, 3) uint8 -> ndarray (3, h, w) float32``, the fold's pre-processing.

    Returns
    -------
    images : ndarray of shape (N, 3, h, w), float32
    source : str
    """
    return _prepared_images(folder, meta, prepare, count=GATE_IMAGES, skip_gate=False, per_class=2, seed=0,
                            generated="generated tissue (the run's validation images were not at hand)")


def calibration_images(folder, meta: dict, prepare) -> tuple[np.ndarray, str]:
    """Pre-processed images int8 quantisation takes its activation ranges from, and where they came from.

    Up to :data:`CALIBRATION_IMAGES` of the fold's validation images other than
    those the agreement gate checks (the same ones when the run has no
    others); generated tissue, other than the gate's, when the project is not at hand.

    Parameters and returns as :func:`validation_images`.
    """
    return _prepared_images(folder, meta, prepare, count=CALIBRATION_IMAGES, skip_gate=True, per_class=4, seed=500,
                            generated="generated tissue")


def _prepared_images(folder, meta: dict, prepare, *, count: int, skip_gate: bool, per_class: int, seed: int,
                     generated: str) -> tuple[np.ndarray, str]:
    """The fold's validation images (or generated tissue, said in ``generated``), pre-processed, and their source."""
    images = _project_images(Path(folder), meta, count=count, skip_gate=skip_gate)
    if images:
        source = "validation images of the run"
    else:
        images = _generated(meta, per_class=per_class, seed=seed)
        source = generated
    return np.stack([prepare(im) for im in images]), source


def open_fold_engine(folder, meta: dict, backend: str, prepare, *, precision: str = "auto"):
    """The engine for one fold's fresh ``model.onnx``, and what it is.

    Parameters
    ----------
    folder : path-like
        The fold folder (its ``model.onnx`` exists).
    meta : dict
        Its ``model.json``.
    backend : {"auto", "openvino", "onnxruntime"}
    prepare : callable
        The fold's pre-processing (see :func:`validation_images`).
    precision : {"auto", "fp32", "bf16", "int8"}
        For OpenVINO (:func:`gusa_core.engines.open_engine`); ``"auto"``
        follows the CPU and ``GUSA_PRECISION``.

    Returns
    -------
    engine : OpenVinoEngine or OnnxRuntimeEngine
    info : EngineInfo
    """
    onnx_path = onnx_cache_path(folder)
    if backend == "onnxruntime":
        engine = create_engine("onnxruntime", onnx_path, precision="fp32")
        return engine, EngineInfo("onnxruntime", engine.precision, f"onnxruntime asked for: {engine.reason}",
                                  engine.device_name)
    weights = weights_path(folder)
    digest = meta.get("weights_sha256") or (sha256_file(weights) if weights.is_file() else "")
    engine, record = open_engine(
        onnx_path, record_path=Path(folder) / RECORD_NAME, weights_sha256=digest,
        validation_images=lambda: validation_images(folder, meta, prepare),
        calibration_images=lambda: calibration_images(folder, meta, prepare),
        name=None if backend == "auto" else backend, precision=precision,
    )
    reason = record.reason if record is not None else engine.reason
    if backend != "auto":
        reason = f"{backend} asked for; {reason}"
    return engine, engine_info(engine, reason)


def engine_info(engine, reason: str) -> EngineInfo:
    """What ``engine`` is, with ``reason`` and, for OpenVINO, how its calls spend the cores."""
    describe = getattr(engine, "describe_mode", None)
    mode = describe() if describe is not None else ""
    return EngineInfo(engine.name, engine.precision, f"{reason}; {mode}" if mode else reason, engine.device_name,
                      mode)
