"""A project's RoI masks: ``masks/<id>.png`` at the image's resolution, 0 / 255."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageReadError, MaskError, ProjectError
from ..imageio import image_size, read_mask, write_mask
from .manifest import MASK_SOURCES, check_id

__all__ = ["MasksMixin", "MASK_DIR"]

MASK_DIR = "masks"


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for a name the system cannot even look up (too long, NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


class MasksMixin:
    """The mask methods of :class:`~gusa_core.project.Project` (which owns ``folder``,
    ``image``, ``image_path``, ``_resolve``, ``_sizes``, ``_lock``, ``_touch``, ``events``, ``save``)."""

    @property
    def masks_dir(self) -> Path:
        """``<folder>/masks``."""
        return self.folder / MASK_DIR

    def mask_path(self, image_id: str) -> Path:
        """Where the image's mask is (or would be saved): ``masks/<id>.png``.

        Raises
        ------
        ProjectError
            The path would lie outside the project folder.
        """
        rec = self.image(image_id)
        return self._resolve(rec.mask) if rec.mask else self._mask_target(rec)

    def _mask_target(self, rec) -> Path:
        """``masks/<id>.png`` of a record, checked to lie inside the project (ProjectError)."""
        try:
            check_id(rec.id)
        except ValueError as exc:
            raise ProjectError(self.masks_dir, str(exc)) from None
        path = self.masks_dir / f"{rec.id}.png"
        self._inside(path, f"the mask of image {rec.id!r}")
        return path

    def _resolve_mask(self, rec) -> Path:
        """The record's stored mask path, checked to lie inside the project (ProjectError)."""
        path = self._resolve(rec.mask)
        self._inside(path, f"the mask of image {rec.id!r}")
        return path

    def has_mask(self, image_id: str) -> bool:
        """Whether the image has a mask file."""
        rec = self.image(image_id)
        return rec.mask is not None and _is_file(self._resolve(rec.mask))

    def missing_masks(self, ids=None) -> list[str]:
        """Ids (of ``ids``, default all images) whose record names a mask file that does not exist."""
        records = self.images if ids is None else [self.image(i) for i in ids]
        return [r.id for r in records if r.mask is not None and not _is_file(self._resolve(r.mask))]

    def image_shape(self, image_id: str) -> tuple[int, int]:
        """``(H, W)`` of an image, read from its header (cached on path and mtime).

        Raises
        ------
        ImageReadError
            The image is missing or unreadable.
        """
        path = self.image_path(image_id)
        try:
            mtime = path.stat().st_mtime_ns
        except (OSError, ValueError):
            mtime = -1
        key = (str(path), mtime)
        cached = self._sizes.get(image_id)
        if cached is not None and cached[:2] == key:
            return cached[2]
        w, h = image_size(path)
        self._sizes[image_id] = (key[0], key[1], (h, w))
        return h, w

    def load_mask(self, image_id: str) -> np.ndarray | None:
        """Read an image's RoI mask, checked against the image's size.

        Returns
        -------
        ndarray of shape (H, W), uint8, or None
            0 / 255; None when the image has no mask.

        Raises
        ------
        MaskError
            The mask file is missing ("mask missing for <id>"), unreadable
            or of the wrong size (the message names the mask file).
        ImageReadError
            The image itself cannot be found or read (its size is unknown).
        """
        rec = self.image(image_id)
        if rec.mask is None:
            return None
        path = self._resolve_mask(rec)
        if not _is_file(path):
            raise MaskError(path, f"mask missing for {rec.id} (the manifest names it but the file is gone)")
        return read_mask(path, shape=self.image_shape(image_id))

    def save_mask(
        self, image_id: str, mask: np.ndarray | None, *, source: str | None = None, save_manifest: bool = True
    ) -> Path | None:
        """Save an image's RoI mask as ``masks/<id>.png`` (atomic PNG).

        Parameters
        ----------
        image_id : str
        mask : ndarray of shape (H, W) or None
            Non-zero is RoI. An all-zero mask (or None) deletes the mask file
            and sets the record's ``mask`` to None.
        source : {"painted", "accepted", "edited"}, optional
            The mask's provenance (``mask_source``). None keeps the recorded
            one (see :meth:`set_mask_source`), "painted" for a new mask.
        save_manifest : bool
            Save the manifest too when the record changed, so nothing is lost.

        Returns
        -------
        Path or None
            The mask file, or None when the mask was removed.

        Raises
        ------
        MaskError
            ``mask`` does not have the image's size.
        ProjectError
            Read-only, another writer holds the project, the manifest on disk
            is of a newer version, or a path would lie outside the project.

        Notes
        -----
        Order of writes: a new mask file is written before the manifest names
        it; a cleared mask is dropped from the manifest first and its file
        deleted after, so a crash in between leaves at worst an unreferenced
        file, never a manifest naming a missing mask.
        """
        rec = self.image(image_id)
        target = self._mask_target(rec)
        if source is not None and source not in MASK_SOURCES:
            raise ValueError(f"mask source must be one of {', '.join(MASK_SOURCES)}, got {source!r}")
        if mask is not None:
            mask = np.asarray(mask)
            try:
                shape = self.image_shape(image_id)
            except ImageReadError:
                shape = None  # the image went missing: keep the user's work anyway
            if mask.ndim != 2 or (shape is not None and mask.shape != shape):
                size = f"{mask.shape[1]}x{mask.shape[0]}" if mask.ndim == 2 else f"shape {mask.shape}"
                want = f"{shape[1]}x{shape[0]}" if shape else "2-D"
                raise MaskError(target, f"mask is {size} (width x height) but its image is {want}")
        empty = mask is None or not mask.any()
        old = self._resolve_mask(rec) if rec.mask else target
        if empty and rec.mask is None and not target.exists():
            return None  # nothing to remove: no change
        self._check_disk_write()
        if not empty:
            write_mask(target, mask)  # outside the lock: encoding takes a while
        with self._lock:
            previous, previous_source = rec.mask, rec.mask_source
            new_ref = None if empty else f"{MASK_DIR}/{rec.id}.png"
            new_source = None if empty else (source or rec.mask_source or "painted")
            changed = rec.mask != new_ref or rec.mask_source != new_source
            rec.mask = new_ref
            rec.mask_source = new_source
            if changed:
                self._touch()
        if save_manifest and self.dirty:
            try:
                self.save()
            except BaseException:
                if empty:
                    with self._lock:
                        if rec.mask is None:
                            rec.mask = previous  # the file stays: the manifest on disk still names it
                            rec.mask_source = previous_source
                raise
        if empty:
            old.unlink(missing_ok=True)
        self.events.mask_changed.emit(image_id)
        return None if empty else target

    def set_mask_source(self, image_id: str, source: str | None) -> None:
        """Record where an image's mask came from (``"painted"``, ``"accepted"``, ``"edited"``).

        The GUI calls it before its (background) :meth:`save_mask`: accepting a
        suggestion marks it "accepted", the first edit of an accepted mask
        "edited". Ignored for an image without a mask unless ``source`` is set
        before the mask is saved.
        """
        if source is not None and source not in MASK_SOURCES:
            raise ValueError(f"mask source must be one of {', '.join(MASK_SOURCES)}, got {source!r}")
        rec = self.image(image_id)
        self._check_editable()
        with self._lock:
            if rec.mask_source == source:
                return
            rec.mask_source = source
            self._touch()
        self.events.mask_changed.emit(image_id)
