"""The project manifest ``gusa-project.json``: its names, versions, image records, reading and writing.

The manifest is versioned (:data:`FORMAT_VERSION`); one written by a newer
version is never read nor overwritten. Writing keeps the previous manifest as
``gusa-project.json.bak``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import NewerVersionError, ProjectError

__all__ = [
    "MANIFEST_NAME",
    "BACKUP_NAME",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MASK_SOURCES",
    "MAX_REJECTIONS",
    "MANIFEST_KEYS",
    "ImageRecord",
    "now",
    "safe_id",
    "check_id",
    "ID_RULE",
    "read_manifest",
    "manifest_ok",
    "write_manifest",
    "check_not_newer",
]

MANIFEST_NAME = "gusa-project.json"
BACKUP_NAME = MANIFEST_NAME + ".bak"
FORMAT_NAME = "gusa-project"
#: Manifest version this code writes; it reads this and older ones.
FORMAT_VERSION = 1
_RECORD_KEYS = ("id", "path", "label", "mask", "notes", "suggested", "mask_source", "rejected_suggestions")
#: Where a mask came from: painted by hand, a model's suggestion accepted as it was, or accepted then edited.
MASK_SOURCES = ("painted", "accepted", "edited")
#: The keys this version understands; others are kept as they were.
MANIFEST_KEYS = ("format", "version", "classes", "class_colors", "reinhard_reference", "images", "created", "modified")
#: Rejected suggestions remembered per image (the newest are kept).
MAX_REJECTIONS = 16


def now() -> str:
    """The current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,239}")  # + ".regions.png" stays under 255
#: What an image id may be (it names the files ``masks/<id>.png``).
ID_RULE = "letters, digits, '.', '_' and '-' only, not starting with a dot, at most 240 characters"


def safe_id(stem: str) -> str:
    """A filename-safe image id made from a file stem (the same stem always gives the same id)."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._ ")[:220].rstrip(".")  # room for a "-N" suffix
    return text or "image"


def check_id(image_id: object) -> str:
    """Return ``image_id`` if it is a safe id (see `ID_RULE`), else raise ValueError naming it."""
    if not isinstance(image_id, str) or _ID.fullmatch(image_id) is None:
        raise ValueError(f"image id {image_id!r} is not allowed ({ID_RULE})"[:400])
    return image_id


@dataclass
class ImageRecord:
    """One image of a project.

    Attributes
    ----------
    id : str
        Stable, unique (case-insensitively) and filename-safe: the image's
        stem, de-duplicated with a ``-2``, ``-3``... suffix.
    path : str
        POSIX path, relative to the project folder when the image is inside
        it, absolute otherwise.
    label : str or None
        A class name, or None (unlabelled).
    mask : str or None
        ``"masks/<id>.png"`` (relative to the project folder), or None.
    notes : str
        Free text.
    suggested : str or None
        A predicted class offered as a suggestion.
    mask_source : {"painted", "accepted", "edited"} or None
        The mask's provenance (:data:`MASK_SOURCES`); None without a mask.
        Manifests written before this field read as "painted" for a mask.
    rejected_suggestions : list of str
        The suggesters (:func:`gusa_core.assist.suggester_key` of a run's
        weights) whose suggested RoI for this image was rejected, oldest
        first, at most :data:`MAX_REJECTIONS`; a run with other weights may
        suggest again. Written only when not empty.
    extra : dict
        Manifest keys this version does not know, kept as they were.
    """

    id: str
    path: str
    label: str | None = None
    mask: str | None = None
    notes: str = ""
    suggested: str | None = None
    mask_source: str | None = None
    rejected_suggestions: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The record as stored in the manifest."""
        d = {k: getattr(self, k) for k in _RECORD_KEYS}
        if d["rejected_suggestions"]:
            d["rejected_suggestions"] = list(d["rejected_suggestions"])
        else:
            del d["rejected_suggestions"]  # manifests without rejections stay as before
        d.update({k: v for k, v in self.extra.items() if k not in d})
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImageRecord":
        """Build a record from its manifest form (raises ValueError when malformed)."""
        if not isinstance(d, dict):
            raise ValueError(f"an image record must be an object, got {type(d).__name__}")
        for key in ("id", "path"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ValueError(f"an image record has no valid {key!r}: {d!r}"[:300])
        check_id(d["id"])
        for key in ("path", "mask"):
            if isinstance(d.get(key), str) and "\x00" in d[key]:
                raise ValueError(f"image {d['id']!r}: {key!r} holds a NUL character")
        for key in ("label", "mask", "suggested"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise ValueError(f"image {d['id']!r}: {key!r} must be a string or null")
        notes = d.get("notes") or ""
        if not isinstance(notes, str):
            raise ValueError(f"image {d['id']!r}: 'notes' must be a string")
        return cls(
            id=d["id"],
            path=d["path"],
            label=d.get("label"),
            mask=d.get("mask"),
            notes=notes,
            suggested=d.get("suggested"),
            mask_source=_mask_source(d),
            rejected_suggestions=_rejections(d),
            extra={k: v for k, v in d.items() if k not in _RECORD_KEYS},
        )


def _mask_source(d: dict) -> str | None:
    if d.get("mask") is None:
        return None
    source = d.get("mask_source")
    if source is None:
        return "painted"
    if source not in MASK_SOURCES:
        raise ValueError(f"image {d['id']!r}: 'mask_source' must be one of {', '.join(MASK_SOURCES)}, got {source!r}")
    return source


def _rejections(d: dict) -> list[str]:
    value = d.get("rejected_suggestions")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"image {d['id']!r}: 'rejected_suggestions' must be a list of non-empty strings")
    return list(dict.fromkeys(value))[-MAX_REJECTIONS:]


def _newer_reason(version: int) -> str:
    return (
        f"written by a newer GuSA Studio (manifest version {version}; this version reads up to "
        f"version {FORMAT_VERSION}): update GuSA Studio to open it. The file was not changed."
    )


def read_manifest(path: Path) -> dict:
    """Read and check a manifest (or its backup).

    Raises
    ------
    ProjectError
        Unreadable, empty, not JSON, not a GuSA manifest, no valid version, or a newer version.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProjectError(path, f"cannot read the manifest: {exc}") from exc
    if not raw.strip():
        raise ProjectError(path, "the manifest is empty (0 bytes)")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProjectError(path, f"the manifest is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ProjectError(path, f"not a GuSA project manifest (no \"format\": \"{FORMAT_NAME}\")")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise ProjectError(path, f"the manifest has no valid version (got {version!r})")
    if version > FORMAT_VERSION:
        raise NewerVersionError(path, _newer_reason(version))
    return data


def manifest_ok(path: Path) -> bool:
    """Whether ``path`` holds a manifest this version can read."""
    try:
        read_manifest(path)
    except ProjectError:
        return False
    return path.is_file()


def write_manifest(path: Path, backup: Path, text: str) -> None:
    """Write ``text`` as the manifest atomically, first copying a readable previous one to ``backup``.

    Raises
    ------
    ProjectError
        The manifest on disk was written by a newer version, or the folder cannot be written.
    """
    try:
        old = path.read_bytes() if path.is_file() else None
    except OSError as exc:
        raise ProjectError(path, f"cannot read the current manifest: {exc}") from exc
    if old is not None:
        old_data = _parse(old)
        if isinstance(old_data, dict):
            _refuse_newer(path, old_data)
            atomic_write_bytes(backup, old)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise ProjectError(path, f"cannot write the manifest: {exc}") from exc


def _parse(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None  # damaged: replaced, but never copied over a good backup


def _refuse_newer(path: Path, data: dict) -> None:
    version = data.get("version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise NewerVersionError(path, _newer_reason(version))


def check_not_newer(path: Path) -> None:
    """Raise `NewerVersionError` if the manifest at ``path`` was written by a newer version.

    Called before any file of the project is written (a mask, for example), so
    that a project a newer version has taken over is left exactly as it is.
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return
    data = _parse(raw)
    if isinstance(data, dict):
        _refuse_newer(path, data)
