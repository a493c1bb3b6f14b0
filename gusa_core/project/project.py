"""A GuSA project: a folder holding a versioned manifest, RoI masks, caches and runs.

::

    MyProject/
      gusa-project.json       manifest; gusa-project.json.bak = the previous one
      masks/<image-id>.png    RoI masks at image resolution (0 / 255)
      cache/                  down-sampled copies (safe to delete)
      runs/<name>/            training runs
      images/                 images copied in (others stay where they are)

`Project` is a Qt-free model: it announces every real change on its
``events`` (a psygnal ``SignalGroup``) and widgets subscribe. ``save()`` may
run in a worker thread while the GUI thread edits the project: the manifest
is snapshotted under a lock and written atomically, the previous one kept as
``.bak``. Signals fire in the thread that made the change.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from psygnal import Signal, SignalGroup

from .. import DEFAULT_CLASSES
from ..atomic import atomic_write
from ..errors import ImageReadError, ProjectError
from ..imageio import read_mask, write_mask
from ..runs import runs_dir
from .classes import ClassesMixin, parse_color
from .importer import scan_folder
from .manifest import (
    BACKUP_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_KEYS,
    MANIFEST_NAME,
    ImageRecord,
    manifest_ok,
    now,
    read_manifest,
    safe_id,
    write_manifest,
)
from .masks import MASK_DIR, MasksMixin
from .slides import mark_slide

__all__ = ["Project", "ProjectEvents"]

_IMAGE_DIR = "images"


class ProjectEvents(SignalGroup):
    """Signals of a `Project`; each fires only when something really changed."""

    image_added = Signal(object)  # ImageRecord
    image_removed = Signal(str)  # id
    label_changed = Signal(str, object)  # id, new label (str or None)
    suggested_changed = Signal(str, object)  # id, suggestion (str or None)
    mask_changed = Signal(str)  # id
    notes_changed = Signal(str)  # id
    classes_changed = Signal()
    reinhard_changed = Signal(object)
    saved = Signal()


class Project(ClassesMixin, MasksMixin):
    """A project folder: images with labels, notes and RoI masks.

    Use the class methods `create`, `open` or `from_folder`; the constructor
    does not touch the disk.

    Attributes
    ----------
    folder : Path
        The project folder (absolute).
    classes : list of str
        Class names, in the order of the classifier's outputs. Change them
        with `add_class`, `remove_class` and `rename_class`.
    class_colors : dict of str to tuple of int
        Display colour (R, G, B) of each class.
    images : list of ImageRecord
        In the order they were added. Change them through the methods.
    events : ProjectEvents
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        classes: Iterable[str] = DEFAULT_CLASSES,
        colors: dict[str, tuple[int, int, int]] | None = None,
    ):
        self.folder = Path(os.path.abspath(folder))
        self.events = ProjectEvents()
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self.classes: list[str] = []
        for name in classes:
            self._check_new_class(str(name))
            self.classes.append(str(name))
        self.class_colors: dict[str, tuple[int, int, int]] = {}
        for name in self.classes:
            self.class_colors[name] = self._default_color(name, colors)
        self.images: list[ImageRecord] = []
        self._by_id: dict[str, ImageRecord] = {}
        self._reinhard: str | None = None
        self.created = now()
        self.modified: str | None = None
        self._extra: dict[str, Any] = {}
        self._changes = 1  # a project never saved is dirty
        self._saved_changes = 0
        self._sizes: dict[str, tuple[str, int, tuple[int, int]]] = {}

    # ------------------------------------------------------------ paths
    @property
    def manifest_path(self) -> Path:
        """``<folder>/gusa-project.json``."""
        return self.folder / MANIFEST_NAME

    @property
    def backup_path(self) -> Path:
        """``<folder>/gusa-project.json.bak``, the manifest before the last save."""
        return self.folder / BACKUP_NAME

    @property
    def runs_dir(self) -> Path:
        """``<folder>/runs``."""
        return runs_dir(self.folder)

    @property
    def cache_dir(self) -> Path:
        """``<folder>/cache`` (safe to delete)."""
        return self.folder / "cache"

    # ------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        *,
        classes: Iterable[str] = DEFAULT_CLASSES,
        colors: dict[str, tuple[int, int, int]] | None = None,
    ) -> "Project":
        """Create a new, empty project in ``folder`` and write its manifest.

        Raises
        ------
        ProjectError
            ``folder`` already holds a project, or is a file.
        ValueError
            Empty or duplicate class names.
        """
        project = cls(folder, classes=classes, colors=colors)
        project._check_free()
        project.folder.mkdir(parents=True, exist_ok=True)
        project.save()
        return project

    def _check_free(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise ProjectError(self.folder, "is a file, not a folder")
        for path in (self.manifest_path, self.backup_path):
            if path.exists():
                raise ProjectError(path, "this folder already holds a GuSA project: open it instead")

    @classmethod
    def open(cls, folder: str | os.PathLike, *, use_backup: bool = False) -> "Project":
        """Open an existing project.

        Parameters
        ----------
        folder : path-like
            The project folder (or its ``gusa-project.json``).
        use_backup : bool
            Read ``gusa-project.json.bak`` instead (after the manifest was
            damaged). The next `save` writes a fresh manifest.

        Raises
        ------
        ProjectError
            Missing folder or manifest, a manifest that is not valid JSON or
            not a GuSA manifest (the message says whether the backup is
            usable), or one written by a newer version (it is left untouched).
        """
        folder = Path(folder)
        if folder.name == MANIFEST_NAME and folder.is_file():
            folder = folder.parent
        if not folder.exists():
            raise ProjectError(folder, "folder does not exist")
        if not folder.is_dir():
            raise ProjectError(folder, "is not a folder")
        project = cls(folder, classes=())
        path = project.backup_path if use_backup else project.manifest_path
        if not path.is_file():
            if use_backup:
                raise ProjectError(path, "no backup manifest in this folder")
            hint = f"; a backup exists: Project.open({str(folder)!r}, use_backup=True)" if project.backup_path.is_file() else ""
            raise ProjectError(path, f"not a GuSA project (no {MANIFEST_NAME}){hint}")
        try:
            data = read_manifest(path)
        except ProjectError as exc:
            if not use_backup and manifest_ok(project.backup_path):
                raise ProjectError(
                    path,
                    f"{exc.reason}. The previous manifest {project.backup_path} is valid: "
                    f"open it with Project.open({str(folder)!r}, use_backup=True)",
                ) from exc
            raise
        try:
            project._load_dict(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ProjectError(path, f"malformed manifest: {exc}") from exc
        project._saved_changes = project._changes = 0
        return project

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        images_src: str | os.PathLike,
        *,
        masks: str | os.PathLike | None = None,
        classes: Iterable[str] = DEFAULT_CLASSES,
    ) -> "Project":
        """Create a project from a folder of images, understanding BACH's layout.

        Parameters
        ----------
        folder : path-like
            The project folder to create (it must not hold a project).
        images_src : path-like
            Either class sub-folders named like the classes (BACH's
            ``Photos/{Normal,Benign,InSitu,Invasive}``; case, spaces and
            underscores are ignored, so ``In situ`` is ``InSitu``), whose
            images get that label, or a flat folder of unlabelled images, or
            both. Other sub-folders are ignored. A ``microscopy_ground_truth.csv``
            (rows ``filename,class``, header optional) in ``images_src`` or its
            parent gives the labels, overriding the folders'. Images are
            referenced where they are, not copied.
        masks : path-like, optional
            Folder of RoI masks named ``<image stem>.png`` (or
            ``<stem>_mask.png``); they are copied into ``masks/`` after their
            size is checked against the image's.
        classes : iterable of str
            The project's classes.

        Returns
        -------
        Project
            Saved.

        Raises
        ------
        ProjectError
            ``folder`` holds a project, ``images_src`` is missing or has no
            images, or problems were found (unknown classes in the CSV, masks
            of the wrong size, unreadable files): all are listed in one error,
            raised before anything is written.
        """
        project = cls(folder, classes=classes)
        project._check_free()
        src = Path(images_src)
        found, labels, mask_files = scan_folder(src, project.classes, masks)
        for (path, _), label in zip(found, labels):
            rec = project._add_record(path, label=label, copy=False, emit=False)
            mark_slide(project, rec)  # whole-slide images become slides (headers only)
        project.folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        try:
            for i, mpath in mask_files.items():
                rec = project.images[i]
                target = project.masks_dir / f"{rec.id}.png"
                write_mask(target, read_mask(mpath))
                written.append(target)
                rec.mask = f"{MASK_DIR}/{rec.id}.png"
            project.save()
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            raise
        return project

    # ------------------------------------------------------------ manifest
    def to_dict(self) -> dict:
        """The manifest as a JSON-ready dict (a snapshot)."""
        with self._lock:
            d = dict(self._extra)
            d.update(
                {
                    "format": FORMAT_NAME,
                    "version": FORMAT_VERSION,
                    "classes": list(self.classes),
                    "class_colors": {k: list(v) for k, v in self.class_colors.items()},
                    "reinhard_reference": self._reinhard,
                    "images": [r.to_dict() for r in self.images],
                    "created": self.created,
                    "modified": self.modified,
                }
            )
            return d

    def _load_dict(self, data: dict) -> None:
        classes = data.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError("'classes' must be a list of names")
        self.classes = []
        for name in classes:
            self._check_new_class(name)
            self.classes.append(name)
        colors = data.get("class_colors") or {}
        if not isinstance(colors, dict):
            raise ValueError("'class_colors' must be an object")
        self.class_colors = {}
        for name in self.classes:
            self.class_colors[name] = self._default_color(name, colors)
        for name, value in colors.items():
            if name not in self.class_colors:
                self.class_colors[name] = parse_color(value)
        ref = data.get("reinhard_reference")
        if ref is not None and not isinstance(ref, str):
            raise ValueError("'reinhard_reference' must be a string or null")
        self._reinhard = ref
        images = data.get("images", [])
        if not isinstance(images, list):
            raise ValueError("'images' must be a list")
        self.images, self._by_id = [], {}
        seen: set[str] = set()
        for d in images:
            rec = ImageRecord.from_dict(d)
            if rec.id.casefold() in seen:
                raise ValueError(f"image id {rec.id!r} appears twice")
            seen.add(rec.id.casefold())
            self.images.append(rec)
            self._by_id[rec.id] = rec
        self.created = data.get("created") or self.created
        self.modified = data.get("modified")
        self._extra = {k: v for k, v in data.items() if k not in MANIFEST_KEYS}

    @property
    def dirty(self) -> bool:
        """Whether the project changed since it was last saved or opened."""
        return self._changes != self._saved_changes

    def _touch(self) -> None:
        self._changes += 1

    def save(self) -> Path:
        """Write the manifest atomically, keeping the previous one as ``.bak``.

        Thread-safe: the manifest is snapshotted under the project's lock, so
        edits may go on in another thread; saves are serialised. Emits
        ``events.saved`` in the calling thread.

        Returns
        -------
        Path
            The manifest.

        Raises
        ------
        ProjectError
            The manifest on disk was written by a newer version (it is not
            overwritten), or the folder cannot be written.
        """
        with self._save_lock:
            with self._lock:
                changes = self._changes
                previous_modified = self.modified
                self.modified = now()
                text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
            try:
                write_manifest(self.manifest_path, self.backup_path, text)
            except BaseException:
                with self._lock:
                    if self._changes == changes:
                        self.modified = previous_modified
                raise
            with self._lock:
                self._saved_changes = changes
        self.events.saved.emit()
        return self.manifest_path

    @property
    def reinhard_reference(self) -> str | None:
        """Colour-normalisation reference (a path or an id), or None for the default."""
        return self._reinhard

    @reinhard_reference.setter
    def reinhard_reference(self, value: str | None) -> None:
        with self._lock:
            if value == self._reinhard:
                return
            self._reinhard = value
            self._touch()
        self.events.reinhard_changed.emit(value)

    # ------------------------------------------------------------ images
    def __len__(self) -> int:
        return len(self.images)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._by_id

    def image(self, image_id: str) -> ImageRecord:
        """The record of an image (KeyError when unknown)."""
        try:
            return self._by_id[image_id]
        except KeyError:
            raise KeyError(f"no image {image_id!r} in the project") from None

    def ids(self) -> list[str]:
        """Image ids, in order."""
        return [r.id for r in self.images]

    def labelled(self) -> list[ImageRecord]:
        """Images whose label is one of the project's classes."""
        classes = set(self.classes)
        return [r for r in self.images if r.label in classes]

    def image_path(self, image_id: str) -> Path:
        """Absolute path of an image (which may no longer exist)."""
        return self._resolve(self.image(image_id).path)

    def _resolve(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.folder / p

    def _stored_path(self, path: Path) -> str:
        path = Path(os.path.abspath(path))
        for base, target in ((self.folder, path), (self.folder.resolve(), path.resolve())):
            try:
                return target.relative_to(base).as_posix()
            except ValueError:
                continue
        return path.as_posix()

    def _unique_id(self, stem: str, extra_taken: Iterable[str] = ()) -> str:
        base = safe_id(stem)
        taken = {k.casefold() for k in self._by_id} | {t.casefold() for t in extra_taken}
        candidate, n = base, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _check_label(self, label: str | None) -> None:
        if label is not None and label not in self.classes:
            raise ValueError(f"unknown class {label!r}; the project's classes are {', '.join(self.classes)}")

    def _add_record(self, path: Path, *, label: str | None, copy: bool, emit: bool = True) -> ImageRecord:
        path = Path(path)
        with self._lock:
            self._check_label(label)
            stored = self._stored_path(path)
            existing = next((r for r in self.images if r.path == stored), None)
            if existing is not None:
                return existing
            if not path.is_file():
                raise ImageReadError(path, "file does not exist")
            if copy:
                image_dir = self.folder / _IMAGE_DIR
                taken = [p.stem for p in image_dir.iterdir()] if image_dir.is_dir() else []
                image_id = self._unique_id(path.stem, taken)
                target = image_dir / f"{image_id}{path.suffix.lower()}"
                atomic_write(target, lambda tmp: shutil.copyfile(path, tmp), suffix=path.suffix.lower())
                stored = self._stored_path(target)
            else:
                image_id = self._unique_id(path.stem)
            rec = ImageRecord(id=image_id, path=stored, label=label)
            self.images.append(rec)
            self._by_id[image_id] = rec
            self._touch()
        if emit:
            self.events.image_added.emit(rec)
        return rec

    def add_image(self, path: str | os.PathLike, *, label: str | None = None, copy: bool = False) -> ImageRecord:
        """Add an image.

        Parameters
        ----------
        path : path-like
            The image file (not decoded here).
        label : str, optional
            One of `classes`.
        copy : bool
            Copy the file into ``images/`` instead of referencing it in place.

        Returns
        -------
        ImageRecord
            The new record; an image already in the project is not added
            again, and its existing record is returned unchanged.

        Raises
        ------
        ImageReadError
            The file does not exist.
        ValueError
            ``label`` is not a class of the project.
        """
        return self._add_record(Path(path), label=label, copy=copy)

    def add_images(self, paths: Iterable[str | os.PathLike], *, label: str | None = None, copy: bool = False) -> list[ImageRecord]:
        """Add several images (see `add_image`); returns their records."""
        return [self.add_image(p, label=label, copy=copy) for p in paths]

    def remove_image(self, image_id: str) -> None:
        """Remove an image from the project. Its files (image, mask) are left on disk."""
        with self._lock:
            rec = self.image(image_id)
            self.images.remove(rec)
            del self._by_id[image_id]
            self._sizes.pop(image_id, None)
            self._touch()
        self.events.image_removed.emit(image_id)

    def set_label(self, image_id: str, label: str | None) -> None:
        """Set (or clear, with None) an image's class."""
        with self._lock:
            rec = self.image(image_id)
            self._check_label(label)
            if rec.label == label:
                return
            rec.label = label
            self._touch()
        self.events.label_changed.emit(image_id, label)

    def set_suggested(self, image_id: str, label: str | None) -> None:
        """Set (or clear) the class a model suggests for an image."""
        with self._lock:
            rec = self.image(image_id)
            if rec.suggested == label:
                return
            rec.suggested = label
            self._touch()
        self.events.suggested_changed.emit(image_id, label)

    def set_notes(self, image_id: str, text: str) -> None:
        """Set an image's notes."""
        text = str(text or "")
        with self._lock:
            rec = self.image(image_id)
            if rec.notes == text:
                return
            rec.notes = text
            self._touch()
        self.events.notes_changed.emit(image_id)

