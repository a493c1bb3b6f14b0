"""Mask editing with a bounded undo history: brush strokes, polygons, hole filling.

``MaskEditor`` edits a ``(H, W) uint8`` RoI mask (0 outside, 255 RoI) in image
(row, col) coordinates. Every edit records only the rectangle it changed, so a
brush stroke over a 2048x1536 mask neither copies nor redraws the whole mask:
while a stroke is in progress the pixels about to be painted are saved tile by
tile (64x64) the first time the brush reaches them, and ``end_stroke`` turns
them into one history entry holding the before/after pixels of the stroke's
bounding rectangle. Nothing here imports Qt; widgets subscribe to
``editor.events.changed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from psygnal import Signal, SignalGroup

__all__ = ["MaskEditor", "MaskEditorEvents", "Rect", "DEFAULT_HISTORY_BYTES", "DEFAULT_HISTORY_STEPS"]

#: A half-open rectangle ``(r0, c0, r1, c1)``: rows ``r0:r1``, columns ``c0:c1``.
Rect = tuple[int, int, int, int]

#: Default bound of the undo + redo histories, in bytes of stored pixels.
DEFAULT_HISTORY_BYTES = 256 * 2**20
#: Default bound of the number of undo steps.
DEFAULT_HISTORY_STEPS = 500

_TILE = 64


@dataclass
class _Entry:
    rect: Rect
    before: np.ndarray
    after: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.before.nbytes + self.after.nbytes


class MaskEditorEvents(SignalGroup):
    """Signals of a `MaskEditor`.

    ``changed(rect)`` fires after every change of the mask's pixels, with the
    half-open rectangle ``(r0, c0, r1, c1)`` that holds all changed pixels.
    """

    changed = Signal(object)


def _px(v: float) -> int:
    """Round half up (Python's round() would send 4.5 to 4 and 5.5 to 6)."""
    return int(math.floor(float(v) + 0.5))


def _line_thickness(radius: int) -> int:
    """``cv2.line`` thickness whose stroke is ``2 * radius + 1`` pixels wide, like the disc.

    OpenCV draws a thick line (thickness >= 2) ``thickness + 2`` pixels wide.
    """
    return 1 if radius == 0 else max(2, 2 * radius - 1)


def _union(a: Rect | None, b: Rect) -> Rect:
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _empty(rect: Rect) -> bool:
    return rect[2] <= rect[0] or rect[3] <= rect[1]


def _changed_bbox(before: np.ndarray, after: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box (as slices into the arrays) of the pixels that differ, or None."""
    diff = before != after
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff[rows[0] : rows[-1] + 1].any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


class MaskEditor:
    """Edit a mask in place with undo and redo.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        The mask to edit; it is copied (the editor owns ``self.mask``).
    max_history_bytes : int
        Bound of the pixels held by the undo and redo histories together; the
        oldest steps are forgotten first. A single step larger than the bound
        is still kept (the latest edit can always be undone).
    max_history_steps : int
        Bound of the number of undo steps.

    Attributes
    ----------
    mask : ndarray of shape (H, W), uint8
        The edited mask. Read it freely; write it only through the editor.
    events : MaskEditorEvents
        ``events.changed(rect)`` after each change.

    Notes
    -----
    Painting uses OpenCV's rasteriser: every point is a filled ``cv2.circle``
    of ``radius`` and each segment a round-capped ``cv2.line`` as wide as
    that disc (``2 * radius + 1`` pixels), both drawn only into the segment's
    rectangle. The result is the capsule of points within ``radius`` of the
    stroke, give or take a pixel along the edges.
    """

    def __init__(
        self,
        mask: np.ndarray,
        *,
        max_history_bytes: int = DEFAULT_HISTORY_BYTES,
        max_history_steps: int = DEFAULT_HISTORY_STEPS,
    ):
        self.events = MaskEditorEvents()
        self.max_history_bytes = int(max_history_bytes)
        self.max_history_steps = int(max_history_steps)
        self._undo: list[_Entry] = []
        self._redo: list[_Entry] = []
        self._bytes = 0
        self._stroke_value: int | None = None
        self.reset(mask)

    # ------------------------------------------------------------ state
    def reset(self, mask: np.ndarray) -> None:
        """Replace the mask by a copy of ``mask`` and forget the history."""
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
        self.mask = np.ascontiguousarray(mask, dtype=np.uint8).copy()
        self._undo.clear()
        self._redo.clear()
        self._bytes = 0
        self._stroke_value = None
        self._tiles: dict[tuple[int, int], np.ndarray] = {}
        self._stroke_rect: Rect | None = None
        self._last: tuple[int, int] | None = None
        h, w = self.mask.shape
        self._touched = np.zeros(((h + _TILE - 1) // _TILE, (w + _TILE - 1) // _TILE), bool)

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the mask."""
        return self.mask.shape  # type: ignore[return-value]

    @property
    def can_undo(self) -> bool:
        """Whether `undo` has a step to undo (a stroke in progress counts)."""
        return bool(self._undo) or self._stroke_rect is not None

    @property
    def can_redo(self) -> bool:
        """Whether `redo` has a step to redo."""
        return bool(self._redo)

    @property
    def undo_steps(self) -> int:
        """Number of steps in the undo history."""
        return len(self._undo)

    @property
    def history_bytes(self) -> int:
        """Bytes of pixels held by the undo and redo histories."""
        return self._bytes

    @property
    def in_stroke(self) -> bool:
        """Whether a stroke is in progress (between `begin_stroke` and `end_stroke`)."""
        return self._stroke_value is not None

    # ------------------------------------------------------------ strokes
    def begin_stroke(self, value: int = 255) -> None:
        """Start a brush stroke that paints ``value`` (255 paints, 0 erases).

        A stroke still in progress is ended first.
        """
        if self._stroke_value is not None:
            self.end_stroke()
        self._stroke_value = int(value)
        self._last = None
        self._stroke_rect = None

    def stroke_to(self, row: float, col: float, radius: float) -> Rect:
        """Paint a disc at (row, col) and the capsule joining it to the previous point.

        Parameters
        ----------
        row, col : float
            The brush centre in image coordinates (rounded half up to the pixel).
        radius : float
            Brush radius in pixels, rounded half up (0 paints single pixels).

        Returns
        -------
        rect : tuple of int
            ``(r0, c0, r1, c1)``, half-open and clipped to the mask: the pixels
            this call may have changed (empty when the brush is off the mask).
        """
        if self._stroke_value is None:
            raise RuntimeError("stroke_to() called outside a stroke: call begin_stroke() first")
        r, c, rad = _px(row), _px(col), max(0, _px(radius))
        pr, pc = self._last if self._last is not None else (r, c)
        self._last = (r, c)
        h, w = self.mask.shape
        # cv2's thick line reaches a little past the radius (half-width r + 0.5, rounded).
        m = rad + 2
        rect = (
            max(0, min(r, pr) - m),
            max(0, min(c, pc) - m),
            min(h, max(r, pr) + m + 1),
            min(w, max(c, pc) + m + 1),
        )
        if _empty(rect):
            return (rect[0], rect[1], rect[0], rect[1])
        self._save_tiles(rect)
        r0, c0, r1, c1 = rect
        view = self.mask[r0:r1, c0:c1]
        value = self._stroke_value
        if (pr, pc) != (r, c):
            cv2.line(view, (pc - c0, pr - r0), (c - c0, r - r0), value, thickness=_line_thickness(rad), lineType=cv2.LINE_8)
        cv2.circle(view, (c - c0, r - r0), rad, value, thickness=-1, lineType=cv2.LINE_8)
        self._stroke_rect = _union(self._stroke_rect, rect)
        self.events.changed.emit(rect)
        return rect

    def end_stroke(self) -> Rect | None:
        """Finish the stroke and record it as one undo step.

        Returns
        -------
        rect : tuple of int or None
            The rectangle of pixels the stroke changed, or None when it changed
            nothing (then no undo step is recorded).
        """
        rect, tiles = self._stroke_rect, self._tiles
        self._stroke_value = None
        self._stroke_rect = None
        self._last = None
        self._tiles = {}
        self._touched[:] = False
        if rect is None:
            return None
        r0, c0, r1, c1 = rect
        before = self.mask[r0:r1, c0:c1].copy()
        for (ti, tj), tile in tiles.items():
            tr0, tc0 = ti * _TILE, tj * _TILE
            # Overlap of the tile with the stroke rectangle, in tile coordinates.
            a0, b0 = max(tr0, r0), max(tc0, c0)
            a1, b1 = min(tr0 + tile.shape[0], r1), min(tc0 + tile.shape[1], c1)
            if a1 > a0 and b1 > b0:
                before[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = tile[a0 - tr0 : a1 - tr0, b0 - tc0 : b1 - tc0]
        return self._record(rect, before, self.mask[r0:r1, c0:c1], announce=False)

    def _save_tiles(self, rect: Rect) -> None:
        r0, c0, r1, c1 = rect
        i0, j0, i1, j1 = r0 // _TILE, c0 // _TILE, (r1 - 1) // _TILE + 1, (c1 - 1) // _TILE + 1
        block = self._touched[i0:i1, j0:j1]
        if block.all():
            return
        for di, dj in zip(*np.nonzero(~block)):
            i, j = i0 + int(di), j0 + int(dj)
            self._tiles[(i, j)] = self.mask[i * _TILE : (i + 1) * _TILE, j * _TILE : (j + 1) * _TILE].copy()
        block[:] = True

    # ------------------------------------------------------------ one-step edits
    def paint_disc(self, row: float, col: float, radius: float, value: int = 255) -> Rect | None:
        """Paint one filled disc as one undo step; returns the changed rectangle or None."""
        r, c, rad = _px(row), _px(col), max(0, _px(radius))
        rect = (r - rad, c - rad, r + rad + 1, c + rad + 1)

        def draw(view: np.ndarray, r0: int, c0: int) -> None:
            cv2.circle(view, (c - c0, r - r0), rad, int(value), thickness=-1, lineType=cv2.LINE_8)

        return self._edit(rect, draw)

    def fill_polygon(self, points_rc, value: int = 255) -> Rect | None:
        """Fill a polygon given as (row, col) vertices, as one undo step.

        Parameters
        ----------
        points_rc : array-like of shape (N, 2)
            Vertices in (row, col) image coordinates (rounded to the pixel).
        value : int
            255 paints, 0 erases.

        Returns
        -------
        rect : tuple of int or None
            The rectangle of changed pixels, or None when nothing changed.
        """
        pts = np.rint(np.asarray(points_rc, dtype=np.float64)).astype(np.int64).reshape(-1, 2)
        if len(pts) < 3:
            return None
        rect = (int(pts[:, 0].min()), int(pts[:, 1].min()), int(pts[:, 0].max()) + 1, int(pts[:, 1].max()) + 1)

        def draw(view: np.ndarray, r0: int, c0: int) -> None:
            xy = np.stack([pts[:, 1] - c0, pts[:, 0] - r0], axis=1).astype(np.int32)
            cv2.fillPoly(view, [xy], int(value), lineType=cv2.LINE_8)

        return self._edit(rect, draw)

    def fill_holes(self) -> Rect | None:
        """Fill every zero region not connected to the mask border, as one undo step.

        Background connectivity is 4 (a region touching the outside only at a
        corner is a hole), which pairs with 8-connected RoI regions.
        """
        h, w = self.mask.shape
        padded = np.zeros((h + 2, w + 2), np.uint8)
        padded[1:-1, 1:-1] = self.mask > 0
        flood_mask = np.zeros((h + 4, w + 4), np.uint8)
        cv2.floodFill(padded, flood_mask, (0, 0), 2, flags=4)
        holes = padded[1:-1, 1:-1] == 0

        def draw(view: np.ndarray, r0: int, c0: int) -> None:
            view[holes] = 255

        return self._edit((0, 0, h, w), draw)

    def clear(self) -> Rect | None:
        """Set the whole mask to 0 as one undo step."""

        def draw(view: np.ndarray, r0: int, c0: int) -> None:
            view[:] = 0

        return self._edit((0, 0) + self.mask.shape, draw)

    def replace(self, mask: np.ndarray, *, binary: bool = True) -> Rect | None:
        """Replace the whole mask (an imported GeoJSON or PNG) as one undo step.

        Parameters
        ----------
        mask : ndarray of shape (H, W)
            The new mask, same shape as the current one; values > 0 become 255.
        binary : bool
            False keeps the values as they are (a slide's class-label mask).

        Returns
        -------
        rect : tuple of int or None
            The bounding rectangle of the pixels that changed, or None.
        """
        mask = np.asarray(mask)
        if mask.shape != self.mask.shape:
            raise ValueError(f"mask of shape {mask.shape} does not fit the image's {self.mask.shape}")
        new = np.where(mask > 0, 255, 0).astype(np.uint8) if binary else np.asarray(mask, np.uint8)

        def draw(view: np.ndarray, r0: int, c0: int) -> None:
            view[:] = new

        return self._edit((0, 0) + self.mask.shape, draw)

    def _edit(self, rect: Rect, draw) -> Rect | None:
        if self._stroke_value is not None:
            self.end_stroke()
        h, w = self.mask.shape
        r0, c0, r1, c1 = max(0, rect[0]), max(0, rect[1]), min(h, rect[2]), min(w, rect[3])
        if r1 <= r0 or c1 <= c0:
            return None
        view = self.mask[r0:r1, c0:c1]
        before = view.copy()
        draw(view, r0, c0)
        return self._record((r0, c0, r1, c1), before, view)

    # ------------------------------------------------------------ history
    def _record(self, rect: Rect, before: np.ndarray, after: np.ndarray, *, announce: bool = True) -> Rect | None:
        box = _changed_bbox(before, after)
        if box is None:
            return None
        rs, cs = box
        rect = (rect[0] + rs.start, rect[1] + cs.start, rect[0] + rs.stop, rect[1] + cs.stop)
        entry = _Entry(rect, before[rs, cs].copy(), after[rs, cs].copy())
        self._bytes -= sum(e.nbytes for e in self._redo)
        self._redo.clear()
        self._undo.append(entry)
        self._bytes += entry.nbytes
        self._trim()
        if announce:  # stroke pixels were announced move by move
            self.events.changed.emit(rect)
        return rect

    def _trim(self) -> None:
        while len(self._undo) > 1 and (self._bytes > self.max_history_bytes or len(self._undo) > self.max_history_steps):
            self._bytes -= self._undo.pop(0).nbytes
        while self._redo and self._bytes > self.max_history_bytes:
            self._bytes -= self._redo.pop(0).nbytes

    def undo(self) -> Rect | None:
        """Undo the last step (ending a stroke in progress first).

        Returns
        -------
        rect : tuple of int or None
            The rectangle restored, or None when there was nothing to undo.
        """
        if self._stroke_value is not None:
            self.end_stroke()
        if not self._undo:
            return None
        entry = self._undo.pop()
        self._redo.append(entry)
        return self._apply(entry.rect, entry.before)

    def redo(self) -> Rect | None:
        """Redo the last undone step; returns its rectangle or None."""
        if self._stroke_value is not None:
            self.end_stroke()
        if not self._redo:
            return None
        entry = self._redo.pop()
        self._undo.append(entry)
        return self._apply(entry.rect, entry.after)

    def _apply(self, rect: Rect, pixels: np.ndarray) -> Rect:
        r0, c0, r1, c1 = rect
        self.mask[r0:r1, c0:c1] = pixels
        self.events.changed.emit(rect)
        return rect
