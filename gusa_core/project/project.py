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
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from psygnal import Signal, SignalGroup

from .. import DEFAULT_CLASSES
from ..errors import NewerVersionError, ProjectError
from ..imageio import read_mask, write_mask
from ..runs import runs_dir
from .classes import ClassesMixin, parse_color
from .guard import GuardMixin, check_mask_ref
from .images import ImagesMixin
from .importer import scan_folder
from .manifest import (
    BACKUP_NAME,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_KEYS,
    MANIFEST_NAME,
    MAX_REJECTIONS,
    ImageRecord,
    manifest_ok,
    now,
    read_manifest,
    write_manifest,
)
from .masks import MASK_DIR, MasksMixin
from .slides import mark_slide

__all__ = ["Project", "ProjectEvents"]


class ProjectEvents(SignalGroup):
    """Signals of a `Project`; each fires only when something really changed."""

    image_added = Signal(object)  # ImageRecord
    image_removed = Signal(str)  # id
    label_changed = Signal(str, object)  # id, new label (str or None)
    suggested_changed = Signal(str, object)  # id, suggestion (str or None)
    mask_changed = Signal(str)  # id
    suggestion_rejected = Signal(str, str)  # id, suggester key
    notes_changed = Signal(str)  # id
    classes_changed = Signal()
    reinhard_changed = Signal(object)
    saved = Signal()


class Project(ImagesMixin, ClassesMixin, MasksMixin, GuardMixin):
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
    read_only : bool
        Opened read-only (or the write lock was taken over): every change is
        refused with `~gusa_core.errors.ReadOnlyProjectError`.
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
        self.read_only = False
        self._write_lock = None
        self.import_warnings: list[str] = []  # what `from_folder` found that may harm results

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
        """``<folder>/runs`` (ProjectError if it resolves outside the project folder)."""
        path = runs_dir(self.folder)
        self._inside(path, "the runs folder")
        return path

    @property
    def cache_dir(self) -> Path:
        """``<folder>/cache`` (safe to delete; ProjectError if it resolves outside the project folder)."""
        path = self.folder / "cache"
        self._inside(path, "the cache folder")
        return path

    # ------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        folder: str | os.PathLike,
        *,
        classes: Iterable[str] = DEFAULT_CLASSES,
        colors: dict[str, tuple[int, int, int]] | None = None,
        lock: str | None = None,
    ) -> "Project":
        """Create a new, empty project in ``folder`` and write its manifest.

        ``lock``: take the folder's write lock first, naming this purpose (see `open`).

        Raises
        ------
        ProjectError
            ``folder`` already holds a project, or is a file; `ProjectLockedError`
            when another writer holds the folder.
        ValueError
            Empty or duplicate class names.
        """
        project = cls(folder, classes=classes, colors=colors)
        project._check_free()
        project.folder.mkdir(parents=True, exist_ok=True)
        project._locked_save(lock)
        return project

    def _locked_save(self, lock: str | None) -> None:
        if lock is not None:
            self._take_lock(lock)
        try:
            self._check_free()  # again, under the lock: another writer may have been quicker
            self.save()
        except BaseException:
            self.close()
            raise

    def _check_free(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise ProjectError(self.folder, "is a file, not a folder")
        for path in (self.manifest_path, self.backup_path):
            if path.exists():
                raise ProjectError(path, "this folder already holds a GuSA project: open it instead")

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike,
        *,
        use_backup: bool = False,
        read_only: bool = False,
        lock: str | None = None,
        take_over: bool = False,
    ) -> "Project":
        """Open an existing project.

        Parameters
        ----------
        folder : path-like
            The project folder (or its ``gusa-project.json``).
        use_backup : bool
            Read ``gusa-project.json.bak`` instead (after the manifest was
            damaged). The next `save` writes a fresh manifest.
        read_only : bool
            Refuse every change (`~gusa_core.errors.ReadOnlyProjectError`);
            needs no lock. Reading verbs (predict, evaluate, info) use this.
        lock : str, optional
            Take the folder's write lock, naming this purpose (``"GuSA
            Studio"``, ``"gusa init"``); `close` releases it. Without ``lock``
            and ``read_only`` the project may be changed but refuses to save
            while another live writer holds the lock.
        take_over : bool
            With ``lock``: take the lock over from a live holder, which stops
            writing at its next save.

        Raises
        ------
        ProjectError
            Missing folder or manifest, a manifest that is not valid JSON or
            not a GuSA manifest (the message says whether the backup is
            usable), one written by a newer version (`NewerVersionError`; it is
            left untouched), a hostile manifest (an image id that is not
            filename-safe, a mask path outside the folder: the entry is
            named), or `ProjectLockedError` naming the writer holding the lock.
        """
        folder = Path(folder)
        if folder.name == MANIFEST_NAME and folder.is_file():
            folder = folder.parent
        if not folder.exists():
            raise ProjectError(folder, "folder does not exist")
        if not folder.is_dir():
            raise ProjectError(folder, "is not a folder")
        project = cls(folder, classes=())
        if lock is not None and not read_only:
            project._take_lock(lock, force=take_over)
        try:
            project._read(use_backup)
        except BaseException:
            project.close()
            raise
        project.read_only = bool(read_only)
        project._clean_temp_files()
        return project

    def _read(self, use_backup: bool) -> None:
        project, folder = self, self.folder
        path = project.backup_path if use_backup else project.manifest_path
        if not path.is_file():
            if use_backup:
                raise ProjectError(path, "no backup manifest in this folder")
            hint = f"; a backup exists: Project.open({str(folder)!r}, use_backup=True)" if project.backup_path.is_file() else ""
            raise ProjectError(path, f"not a GuSA project (no {MANIFEST_NAME}){hint}")
        try:
            data = read_manifest(path)
        except NewerVersionError:
            raise  # the backup is older still: never advise going back to it
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
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as exc:
            raise ProjectError(path, f"malformed manifest: {exc}") from exc
        project._saved_changes = project._changes = 0

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        images_src: str | os.PathLike,
        *,
        masks: str | os.PathLike | None = None,
        classes: Iterable[str] = DEFAULT_CLASSES,
        lock: str | None = None,
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
        lock : str, optional
            Take the folder's write lock (see `open`) before writing anything.

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
        found, labels, mask_files = scan_folder(src, project.classes, masks, project.import_warnings)
        for (path, _), label in zip(found, labels):
            rec = project._add_record(path, label=label, copy=False, emit=False)
            mark_slide(project, rec)  # whole-slide images become slides (headers only)
        project.folder.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            project._take_lock(lock)
        written: list[Path] = []
        try:
            project._check_free()
            for i, mpath in mask_files.items():
                rec = project.images[i]
                target = project._inside(project.masks_dir / f"{rec.id}.png", f"the mask of image {rec.id!r}")
                write_mask(target, read_mask(mpath))
                written.append(target)
                rec.mask = f"{MASK_DIR}/{rec.id}.png"
            project.save()
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            project.close()
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
            if rec.mask is not None:
                check_mask_ref(self.folder, rec.id, rec.mask)
            slide = rec.extra.get("slide")
            if isinstance(slide, dict) and slide.get("regions") is not None:
                check_mask_ref(self.folder, rec.id, str(slide["regions"]))
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
            self._check_disk_write()
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
        self._check_editable()
        with self._lock:
            if value == self._reinhard:
                return
            self._reinhard = value
            self._touch()
        self.events.reinhard_changed.emit(value)

    # ------------------------------------------------- rejected suggestions
    def reject_suggestion(self, image_id: str, suggester: str, *, save_manifest: bool = True) -> None:
        """Remember that ``suggester``'s suggested RoI for an image was rejected.

        Parameters
        ----------
        image_id : str
        suggester : str
            Who suggested it: :func:`gusa_core.assist.suggester_key` of the
            run (its weights). Another run, or the same run retrained, may
            suggest for the image again.
        save_manifest : bool
            Save the manifest at once when the record changed.

        Raises
        ------
        ProjectError
            Read-only, or the manifest cannot be written.
        """
        if not isinstance(suggester, str) or not suggester:
            raise ValueError(f"a suggester key must be a non-empty string, got {suggester!r:.80}")
        self._check_editable()
        with self._lock:
            rec = self.image(image_id)
            if suggester in rec.rejected_suggestions:
                return
            rec.rejected_suggestions = (rec.rejected_suggestions + [suggester])[-MAX_REJECTIONS:]
            self._touch()
        if save_manifest:
            self.save()
        self.events.suggestion_rejected.emit(image_id, suggester)

    def is_suggestion_rejected(self, image_id: str, suggester: str | None) -> bool:
        """Whether ``suggester``'s suggestion for an image was rejected (see :meth:`reject_suggestion`)."""
        return suggester is not None and suggester in self.image(image_id).rejected_suggestions
