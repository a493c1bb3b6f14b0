"""A project's image records: adding, removing, labelling, notes and suggestions."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..atomic import atomic_write
from ..errors import ImageReadError
from .manifest import ImageRecord, safe_id

__all__ = ["ImagesMixin"]

_IMAGE_DIR = "images"


class ImagesMixin:
    """The image methods of :class:`~gusa_core.project.Project` (which owns ``folder``,
    ``images``, ``_by_id``, ``classes``, ``_lock``, ``_touch``, ``_sizes``, ``events``)."""

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

    def _add_record(self, path: Path, *, label: str | None, copy: bool, emit: bool = True,
                    companion: Path | None = None) -> ImageRecord:
        """Add one file; with ``copy``, a ``companion`` folder (a MIRAX slide's data) is copied first, renamed as the id."""
        path = Path(path)
        self._check_editable()
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
                if companion is not None:
                    _copy_folder(companion, image_dir / image_id)
                try:
                    atomic_write(target, lambda tmp: shutil.copyfile(path, tmp), suffix=path.suffix.lower())
                except BaseException:
                    if companion is not None:  # the data folder without its file is of no use
                        shutil.rmtree(image_dir / image_id, ignore_errors=True)
                    raise
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
        self._check_editable()
        with self._lock:
            rec = self.image(image_id)
            self.images.remove(rec)
            del self._by_id[image_id]
            self._sizes.pop(image_id, None)
            self._touch()
        self.events.image_removed.emit(image_id)

    def set_label(self, image_id: str, label: str | None) -> None:
        """Set (or clear, with None) an image's class."""
        self._check_editable()
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
        self._check_editable()
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
        self._check_editable()
        with self._lock:
            rec = self.image(image_id)
            if rec.notes == text:
                return
            rec.notes = text
            self._touch()
        self.events.notes_changed.emit(image_id)


def _copy_folder(source: Path, target: Path) -> None:
    """Copy a folder whole or not at all: into a hidden sibling first, then renamed into place.

    Refused (``FileExistsError``) when ``target`` exists, so nothing already there is replaced.
    """
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    tmp = target.with_name(f".{target.name}.copying-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
