"""Model files and run folders: safetensors weights with a JSON description beside them.

A saved model is a folder holding ``model.safetensors`` (the weights, with a
compact copy of the description in the safetensors header metadata, so the
weights carry their own settings) and ``model.json`` (the description:
variant, classes, input size, colour normalisation, training settings and
history). Both are written atomically. Loading checks everything before a
single weight is copied and never unpickles anything.

Trust: ``model.json`` records the SHA-256 of the weights file
(``weights_sha256``); a model whose weights do not match it, whose
``model.json`` disagrees with the settings the weights carry (variant,
classes, input size, mean/std, Reinhard reference), or whose weights hold a
NaN or an infinity is refused with a :class:`CheckpointError` naming the
file. A ``model.json`` written before the hash was recorded is accepted as
it is (the embedded settings are still compared); it is not rewritten, so a
read-only model folder stays usable.

The cached ONNX export of a model folder (``model.onnx``) is described by
``model.onnx.json``, which records the weights' SHA-256 and the export
settings: the cache is fresh only when both match (never by modification
time, which ``cp -p`` of older weights preserves).

A resume state (optimizer, scheduler, random generators, epoch, history of
an unfinished fold) is a folder holding ``state.safetensors`` (tensors) plus
``state.json`` (structure), again with no pickle. Where these folders lie in
a run is decided by :mod:`gusa_core.runs`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .atomic import atomic_write, atomic_write_json
from .errors import CheckpointError
from .models_registry import VARIANT_NAMES
from .stain import ReinhardNormalizer

if TYPE_CHECKING:  # torch is imported where weights are touched: listing runs stays light
    import torch
    from torch import nn

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "META_FILE",
    "save_model",
    "load_model",
    "read_model_meta",
    "is_model_folder",
    "has_state",
    "onnx_cache_path",
    "onnx_cache_is_fresh",
    "record_onnx_cache",
    "forget_onnx_cache",
    "weights_path",
    "weights_sha256",
    "read_json",
    "save_state",
    "load_state",
    "now_iso",
]

FORMAT = "gusa-model"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MODEL_FILE = "model.safetensors"
META_FILE = "model.json"
ONNX_FILE = "model.onnx"
ONNX_INFO_FILE = "model.onnx.json"
_ONNX_FORMAT = "gusa-onnx-cache"
_META_KEY = "gusa_meta"
_STATE_JSON = "state.json"
_STATE_TENSORS = "state.safetensors"
_MAX_LISTED = 5
# Settings the weights carry in their header that model.json must repeat exactly.
_EMBEDDED_KEYS = ("variant", "class_names", "input_size", "mean", "std", "reinhard")


def now_iso() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unwrap(model: "nn.Module") -> "nn.Module":
    from torch import nn

    return getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_model(folder: str | os.PathLike, model: nn.Module, meta: dict) -> Path:
    """Save a model as ``model.safetensors`` + ``model.json`` in ``folder``, atomically.

    Parameters
    ----------
    folder : path-like
        Created if missing; existing model files are replaced.
    model : nn.Module
        A model of :func:`gusa_core.models.build_model` (a DDP wrapper is unwrapped).
    meta : dict
        JSON-ready description; must hold ``variant`` and ``class_names``.
        ``format``, ``format_version``, ``tensors``, ``created`` and
        ``gusa_version`` are filled in.

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = _cpu_tensors(_unwrap(model).state_dict())
    meta = dict(meta)
    for key in ("variant", "class_names"):
        if key not in meta:
            raise ValueError(f"meta needs {key!r}")
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    meta.setdefault("created", now_iso())
    meta.setdefault("gusa_version", __version__)
    meta["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
    embedded = {k: v for k, v in meta.items() if k not in ("tensors", "history")}
    header = {"format": FORMAT, _META_KEY: json.dumps(embedded, separators=(",", ":"), ensure_ascii=False)}
    # Weights first, description second: a model.json never describes weights not yet on disk.
    _save_safetensors(folder / MODEL_FILE, tensors, header)
    meta["weights_sha256"] = weights_sha256(folder)
    atomic_write_json(folder / META_FILE, meta)
    return folder


def _model_paths(folder_or_file: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(folder_or_file)
    if p.is_dir():
        return p / MODEL_FILE, p / META_FILE
    if p.suffix == ".json":
        return p.with_name(MODEL_FILE), p
    if p.suffix == ".safetensors":
        return p, p.with_name(META_FILE)
    if not p.exists():
        raise CheckpointError(p, "no such model folder or file")
    raise CheckpointError(p, f"not a model folder, {MODEL_FILE} or {META_FILE}")


def read_json(path: Path) -> dict:
    """A JSON object from ``path``.

    Raises
    ------
    CheckpointError
        Missing file, invalid JSON, or not an object.
    """
    if not path.is_file():
        raise CheckpointError(path, "file does not exist")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(path, "JSON is not an object")
    return obj


def read_model_meta(folder_or_file: str | os.PathLike) -> dict:
    """Read and check a ``model.json`` without loading weights.

    Raises
    ------
    CheckpointError
        Missing or invalid JSON, wrong format or version, unknown variant, bad class list.
    """
    _, json_path = _model_paths(folder_or_file)
    meta = read_json(json_path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(json_path, f"not a GuSA model description (format is {meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            json_path,
            f"format_version {meta.get('format_version')!r} is not supported by gusa {__version__} (supported: {list(SUPPORTED_VERSIONS)})",
        )
    if meta.get("variant") not in VARIANT_NAMES:
        raise CheckpointError(json_path, f"unknown variant {meta.get('variant')!r} (known: {', '.join(VARIANT_NAMES)})")
    names = meta.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise CheckpointError(json_path, "class_names must be a non-empty list of names")
    _check_settings(json_path, meta)
    return meta


#: Largest input side a model.json may declare (the network's memory grows with its square).
MAX_INPUT_SIDE = 8192


def _check_settings(json_path: Path, meta: dict) -> None:
    """Refuse pre-processing settings that cannot be used (before anything runs on them)."""
    size = meta.get("input_size")
    if size is not None:
        ok = (isinstance(size, list) and len(size) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in size))
        if not ok or not all(16 <= v <= MAX_INPUT_SIDE and v % 16 == 0 for v in size):
            raise CheckpointError(
                json_path, f"input_size must be [width, height], multiples of 16 from 16 to {MAX_INPUT_SIDE}, "
                f"got {size!r:.80}: restore the file or retrain the model")
    for key in ("mean", "std"):
        v = meta.get(key)
        if v is None:
            continue
        ok = (isinstance(v, list) and len(v) == 3
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))
        if not ok or (key == "std" and not all(x > 0 for x in v)):
            raise CheckpointError(json_path, f"{key} must be 3 finite numbers{' above 0' if key == 'std' else ''}, got {v!r:.80}")
    ref = meta.get("reinhard")
    if ref is not None:
        try:
            ReinhardNormalizer.from_dict(ref)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(json_path, f"the stain reference 'reinhard' is broken ({exc}): restore the file or retrain") from None
    sha = meta.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise CheckpointError(json_path, f"weights_sha256 is not a SHA-256 hex digest: {sha!r:.80}")


def _open_safetensors(path: Path):
    """Header metadata and tensor shapes of a safetensors file, checked for truncation."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(path, "file does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises SafetensorError, OSError, ...
        raise CheckpointError(path, f"truncated or not a safetensors file ({exc})") from None
    return metadata, shapes


def _list(items: list[str]) -> str:
    more = f" (and {len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return "; ".join(items[:_MAX_LISTED]) + more


def load_model(folder_or_file: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a saved model after checking that description and weights agree.

    Parameters
    ----------
    folder_or_file : path-like
        A model folder, or its ``model.safetensors`` or ``model.json``.
    device : str or torch.device
        Where to put the model (``"auto"`` allowed).

    Returns
    -------
    model : nn.Module
        In eval mode, on ``device``.
    meta : dict
        The content of ``model.json``.

    Raises
    ------
    CheckpointError
        A file is missing, the JSON is invalid, the format or variant is
        unknown, the safetensors file is truncated, its embedded settings
        disagree with ``model.json``, or tensor names or shapes differ from
        what the variant builds. The message names the file.
    """
    from safetensors.torch import load_file

    # torch comes with these: imported here so that reading model descriptions stays torch-free
    from .device import resolve_device
    from .models import build_model

    st_path, json_path = _model_paths(folder_or_file)
    if not st_path.is_file():
        raise CheckpointError(st_path, "file does not exist (the model's weights)")
    meta = read_model_meta(json_path)
    header, shapes = _open_safetensors(st_path)
    raw = header.get(_META_KEY)
    if raw is None:
        raise CheckpointError(st_path, "settings and weights disagree: the weights carry no GuSA description")
    try:
        embedded = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(st_path, "settings and weights disagree: the embedded description is not valid JSON") from None
    if not isinstance(embedded, dict):
        raise CheckpointError(st_path, "settings and weights disagree: the embedded description is not an object")
    for key in _EMBEDDED_KEYS:
        if key not in ("variant", "class_names") and key not in embedded and key not in meta:
            continue
        if embedded.get(key) != meta.get(key):
            raise CheckpointError(
                st_path,
                f"settings and weights disagree: {key} is {embedded.get(key)!r:.120} in {st_path.name} "
                f"but {meta.get(key)!r:.120} in {json_path.name}; restore {json_path.name} or retrain",
            )
    model = build_model(meta["variant"], num_classes=len(meta["class_names"]), pretrained="none")
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    problems = [f"missing {k} {expected[k]}" for k in expected if k not in shapes]
    problems += [f"unexpected {k} {shapes[k]}" for k in shapes if k not in expected]
    problems += [f"{k}: {shapes[k]} in the file, {expected[k]} expected" for k in expected if k in shapes and shapes[k] != expected[k]]
    if problems:
        raise CheckpointError(st_path, f"weights do not fit variant {meta['variant']!r} with {len(meta['class_names'])} classes: {_list(problems)}")
    expected_sha = meta.get("weights_sha256")
    if expected_sha is not None and weights_sha256(st_path.parent, st_path.name) != expected_sha:
        raise CheckpointError(
            st_path,
            f"the weights do not match the SHA-256 recorded in {json_path.name} (changed, corrupted or swapped "
            "after saving): restore the folder from a backup or retrain",
        )
    try:
        tensors = load_file(str(st_path), device="cpu")
    except Exception as exc:
        raise CheckpointError(st_path, f"truncated or not a safetensors file ({exc})") from None
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all())]
    if bad:
        raise CheckpointError(st_path, f"the weights hold NaN or infinite values ({_list(bad)}): the training diverged "
                              "or the file is damaged; retrain with a lower learning rate or restore the folder")
    model.load_state_dict(tensors, strict=True)
    model.to(resolve_device(device)).eval()
    return model, meta


def is_model_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a saved model (both of its files)."""
    folder = Path(folder)
    return (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file()


def onnx_cache_path(folder: str | os.PathLike) -> Path:
    """Where a model folder caches its ONNX export (see :mod:`gusa_core.inference.export`).

    Use it only when :func:`onnx_cache_is_fresh` says so; after writing it,
    call :func:`record_onnx_cache`.
    """
    return Path(folder) / ONNX_FILE


def _onnx_record(folder: Path, settings: dict) -> dict:
    return {"format": _ONNX_FORMAT, "weights_sha256": weights_sha256(folder),
            "settings": json.loads(json.dumps(settings, sort_keys=True))}


def onnx_cache_is_fresh(folder: str | os.PathLike, settings: dict) -> bool:
    """Whether the folder's ``model.onnx`` was exported from its current weights with ``settings``.

    Parameters
    ----------
    folder : path-like
        A model folder.
    settings : dict
        JSON-ready export settings (input size, opset, ...); any change means a new export.

    Returns
    -------
    bool
        True when ``model.onnx`` exists and ``model.onnx.json`` records the
        SHA-256 of the current weights and the same settings.
    """
    folder = Path(folder)
    if not (folder / ONNX_FILE).is_file():
        return False
    try:
        recorded = json.loads((folder / ONNX_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    try:
        return recorded == _onnx_record(folder, settings)
    except OSError:
        return False


def forget_onnx_cache(folder: str | os.PathLike) -> None:
    """Drop the record of the ONNX cache (before re-exporting: a crash then leaves it stale, not trusted)."""
    try:
        (Path(folder) / ONNX_INFO_FILE).unlink()
    except FileNotFoundError:
        pass


def record_onnx_cache(folder: str | os.PathLike, settings: dict) -> Path:
    """Record that ``model.onnx`` now holds the export of the current weights with ``settings``."""
    return atomic_write_json(Path(folder) / ONNX_INFO_FILE, _onnx_record(Path(folder), settings))


_SHA_CACHE: dict[str, tuple[tuple[int, int, int, int], str]] = {}
_SHA_LOCK = threading.Lock()


def weights_sha256(folder: str | os.PathLike, name: str = MODEL_FILE) -> str:
    """SHA-256 (hex) of a model folder's weights file, cached while the file is unchanged.

    The cache key is the file's size, modification time, inode and status
    change time: ``cp -p`` can restore an older file with the same size and
    modification time into the same inode, but it cannot set the change time.

    Parameters
    ----------
    folder : path-like
        A model folder.
    name : str
        The file inside it (default ``model.safetensors``).

    Raises
    ------
    CheckpointError
        The file does not exist or cannot be read.
    """
    path = Path(folder) / name
    try:
        st = path.stat()
        key = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        ident = os.path.abspath(path)
        with _SHA_LOCK:
            hit = _SHA_CACHE.get(ident)
        if hit is not None and hit[0] == key:
            return hit[1]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CheckpointError(path, f"cannot read the weights ({exc.strerror or exc})") from None
    value = digest.hexdigest()
    with _SHA_LOCK:
        _SHA_CACHE[ident] = (key, value)
    return value


def weights_path(folder: str | os.PathLike) -> Path:
    """The weights file of a model folder."""
    return Path(folder) / MODEL_FILE


def has_state(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a complete-looking resume state (see :func:`save_state`)."""
    return (Path(folder) / _STATE_JSON).is_file()


# ------------------------------------------------------------- resume state
def _flatten(obj: Any, prefix: str, tensors: dict[str, "torch.Tensor"]) -> Any:
    """Move every tensor of a nested structure into ``tensors``; return the JSON-ready rest."""
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        keys = list(obj.keys())
        return {"__dict__": [[_key(k), _flatten(obj[k], f"{prefix}.{k}", tensors)] for k in keys]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, float) and obj != obj:
        return {"__float__": "nan"}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item"):  # numpy scalar
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} in a resume state")


def _key(k):
    if isinstance(k, (bool, int, float, str)) or k is None:
        return k
    raise TypeError(f"unsupported dict key {k!r}")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(folder: str | os.PathLike, state: dict) -> Path:
    """Save a resume state (any nest of dicts, lists, tuples, numbers, strings and tensors).

    ``state.safetensors`` holds the tensors, ``state.json`` the structure; both
    carry the same token, and ``state.json`` is written last, so a crash
    between the two is detected on load instead of mixing two epochs.

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict = {}
    structure = _flatten(state, "s", tensors)
    token = f"{now_iso()}-{os.getpid()}-{id(state)}-{len(tensors)}"
    _save_safetensors(folder / _STATE_TENSORS, tensors, {"token": token})
    atomic_write_json(folder / _STATE_JSON, {"format": "gusa-train-state", "token": token, "state": structure}, indent=None)
    return folder


def load_state(folder: str | os.PathLike) -> dict:
    """Load what :func:`save_state` wrote.

    Raises
    ------
    CheckpointError
        Files missing, unreadable or from two different saves.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    doc = read_json(folder / _STATE_JSON)
    st = folder / _STATE_TENSORS
    header, _ = _open_safetensors(st)
    if header.get("token") != doc.get("token"):
        raise CheckpointError(st, "resume state is inconsistent (tensors and structure come from different saves)")
    tensors = load_file(str(st), device="cpu")
    return _unflatten(doc["state"], tensors)
