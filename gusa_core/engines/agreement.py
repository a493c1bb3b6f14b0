"""The agreement gate: a reduced precision is trusted only once it agrees with fp32.

Before an engine runs a fold's model in bf16 for the first time, it and an
fp32 engine classify the same validation images; the bf16 engine is kept when
every image has the same top-1 class and no class probability moves by more
than 0.01 (:func:`check_agreement`). The verdict is stored in ``engine.json``
beside the fold's weights, keyed by the weights' SHA-256, the engine, its
version and the precision, so new weights (or a new OpenVINO) are checked
again, and a failure falls back to fp32 with its reason on every later start.

This module owns ``engine.json``: nothing else reads or writes it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_json

__all__ = [
    "MAX_PROB_DIFF",
    "RECORD_NAME",
    "AgreementRecord",
    "check_agreement",
    "softmax",
    "sha256_file",
    "load_records",
    "save_record",
    "gate",
]

MAX_PROB_DIFF = 0.01
RECORD_NAME = "engine.json"
_FORMAT = "gusa-engine-check/1"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, ``logits`` of shape (N, C)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def check_agreement(reference_probs, candidate_probs, *, max_diff: float = MAX_PROB_DIFF) -> tuple[bool, str]:
    """Whether ``candidate_probs`` agree with ``reference_probs``.

    Parameters
    ----------
    reference_probs, candidate_probs : ndarray of shape (N, C)
        Class probabilities of the same N images (rows sum to 1).
    max_diff : float
        Largest absolute difference of any probability that still agrees.

    Returns
    -------
    ok : bool
        Top-1 identical for every image and every difference <= ``max_diff``.
    detail : str
        What was found, e.g. ``"8 images: top-1 identical, max |Δp| 0.0004"``.
    """
    ref = np.asarray(reference_probs, dtype=np.float64)
    cand = np.asarray(candidate_probs, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 2 or ref.shape[0] == 0:
        return False, f"shapes differ or are empty: {ref.shape} vs {cand.shape}"
    if not np.all(np.isfinite(cand)):
        return False, f"{ref.shape[0]} images: the candidate gave non-finite probabilities"
    flips = int(np.count_nonzero(ref.argmax(axis=1) != cand.argmax(axis=1)))
    diff = float(np.abs(ref - cand).max())
    n = ref.shape[0]
    if flips:
        return False, f"{n} images: top-1 differs on {flips}, max |Δp| {diff:.4f}"
    if diff > max_diff + 1e-12:  # 0.7 - 0.01 is not exactly 0.69: the rounding is not a difference
        return False, f"{n} images: top-1 identical, but max |Δp| {diff:.4f} > {max_diff}"
    return True, f"{n} images: top-1 identical, max |Δp| {diff:.4f}"


@dataclass(frozen=True)
class AgreementRecord:
    """The verdict of one agreement check.

    Attributes
    ----------
    engine : str
        The candidate engine's name (``"openvino"``).
    precision : str
        The precision checked (``"bf16"``).
    engine_version : str
        The engine library's version; another version is checked again.
    weights_sha256 : str
        SHA-256 of the weights the check ran with.
    ok : bool
        Whether the candidate agreed with fp32.
    detail : str
        What :func:`check_agreement` found.
    reason : str
        The sentence for the user: which precision is used and why.
    date : str
        ISO 8601 time of the check (UTC).
    """

    engine: str
    precision: str
    engine_version: str
    weights_sha256: str
    ok: bool
    detail: str
    reason: str
    date: str

    @property
    def key(self) -> str:
        """``"<engine>/<precision>"``, its key in ``engine.json``."""
        return f"{self.engine}/{self.precision}"

    def matches(self, engine: str, precision: str, engine_version: str, weights_sha256: str) -> bool:
        """Whether this verdict still holds for that engine, precision, version and weights."""
        return (self.engine, self.precision, self.engine_version, self.weights_sha256) == (
            engine, precision, engine_version, weights_sha256)


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_records(path: str | os.PathLike) -> dict[str, AgreementRecord]:
    """The records stored in an ``engine.json`` (``{}`` when missing or unreadable).

    A damaged file is not an error: it only means the check runs again.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            return {}
        fields = AgreementRecord.__dataclass_fields__
        records = {}
        for key, value in dict(data.get("checks") or {}).items():
            record = AgreementRecord(**{name: value[name] for name in fields})
            records[key] = record
        return records
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def save_record(path: str | os.PathLike, record: AgreementRecord) -> Path:
    """Store ``record`` in ``engine.json`` atomically, beside the other engines' records."""
    records = load_records(path)
    records[record.key] = record
    payload = {"format": _FORMAT, "checks": {key: asdict(r) for key, r in sorted(records.items())}}
    return atomic_write_json(path, payload)


def _probs(engine, images: np.ndarray, batch_size: int) -> np.ndarray:
    out = [softmax(engine.run(images[i:i + batch_size])["logits"]) for i in range(0, len(images), batch_size)]
    return np.concatenate(out, axis=0)


def gate(engine_factory: Callable[[], object], fp32_factory: Callable[[], object], images, *,
         record_path: str | os.PathLike, weights_sha256: str, batch_size: int = 4):
    """The candidate engine if it agrees with fp32 on ``images``, else the fp32 engine.

    The check runs once per weights, engine version and precision; later
    calls read the verdict from ``record_path`` and build only the engine
    they will use.

    Parameters
    ----------
    engine_factory : callable
        Builds the candidate engine (e.g. OpenVINO at the CPU's precision).
    fp32_factory : callable
        Builds the fp32 reference engine, used instead when the candidate fails.
    images : ndarray of shape (N, 3, H, W), or a callable returning one
        Pre-processed validation images (float32), a handful is enough; a
        callable is called only when the check really runs.
    record_path : path-like
        The fold's ``engine.json``.
    weights_sha256 : str
        Hash of the fold's weights (:func:`sha256_file`).
    batch_size : int
        Images per engine call.

    Returns
    -------
    engine : object
        The engine to predict with.
    record : AgreementRecord
        The verdict it rests on (``record.reason`` says which precision and why).
    """
    candidate = engine_factory()
    name, precision = candidate.name, candidate.precision
    version = str(getattr(candidate, "version", ""))
    previous = load_records(record_path).get(f"{name}/{precision}")
    if previous is not None and previous.matches(name, precision, version, weights_sha256):
        return (candidate, previous) if previous.ok else (fp32_factory(), previous)
    images = np.ascontiguousarray(images() if callable(images) else images, dtype=np.float32)
    reference = fp32_factory()
    ok, detail = check_agreement(_probs(reference, images, batch_size), _probs(candidate, images, batch_size))
    if ok:
        reason = f"{name} {precision} agrees with fp32 ({detail}): {candidate.reason}"
    else:
        reason = f"{name} {precision} disagrees with fp32 ({detail}): fp32 is used"
    record = AgreementRecord(
        engine=name, precision=precision, engine_version=version, weights_sha256=weights_sha256, ok=ok,
        detail=detail, reason=reason,
        date=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    )
    save_record(record_path, record)
    return (candidate, record) if ok else (reference, record)
