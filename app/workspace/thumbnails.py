"""Thumbnails of the image list, made in a pool thread: a cached down-sampled copy, or a slide's own thumbnail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Signal
from PySide6.QtGui import QImage

__all__ = ["ThumbJob", "ThumbSignals"]

_SLIDE_PIXELS = 64 * 2**20  # above this, a file is read as a slide from its smallest sufficient level
_VENDOR_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide")


def _slide_thumbnail(path: Path, size) -> np.ndarray:
    from gusa_core.slides import open_slide

    with open_slide(path) as slide:
        return slide.get_thumbnail(tuple(size))


class ThumbSignals(QObject):
    """``done(image id, QImage)`` or ``failed(image id, message)``, delivered in the GUI thread."""

    done = Signal(str, QImage)
    failed = Signal(str, str)


class ThumbJob(QRunnable):
    """Read (or take from the cache) a copy of one image that fits ``box`` (w, h), off the GUI thread."""

    def __init__(self, signals: ThumbSignals, image_id: str, path: Path, cache, box: tuple[int, int]):
        super().__init__()
        self.signals, self.image_id, self.path, self.cache, self.box = signals, image_id, path, cache, box
        self.setAutoDelete(True)

    def run(self) -> None:
        from gusa_core.imageio import image_size, read_image, resize_image

        try:
            box = self.box
            w, h = (0, 0) if self.path.suffix.lower() in _VENDOR_SUFFIXES else image_size(self.path)
            scale = min(box[0] / w, box[1] / h) if w else 1.0
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            if not w or w * h > _SLIDE_PIXELS:
                small = _slide_thumbnail(self.path, box)  # never decode a whole slide
            elif self.cache is not None:
                small = self.cache.get(self.path, size)
            else:
                small = resize_image(read_image(self.path), size)
            small = np.ascontiguousarray(small, dtype=np.uint8)
            qimg = QImage(small.data, small.shape[1], small.shape[0], 3 * small.shape[1], QImage.Format.Format_RGB888).copy()
            self.signals.done.emit(self.image_id, qimg)
        except Exception as exc:  # reported in the row, never raised in a pool thread
            try:
                self.signals.failed.emit(self.image_id, str(exc))
            except RuntimeError:
                pass
