"""Viewing geometry of a slide: the level for a zoom, the tiles under a viewport, a byte-capped tile cache.

Nothing here reads pixels or imports Qt: a viewer asks :func:`level_for_zoom` which level to
draw, :func:`viewport_tiles` which tiles of that level cover its viewport, and keeps decoded
tiles in a :class:`TileCache`. Coordinates follow :mod:`gusa_core.slides.reader`: boxes are
``(x, y, width, height)`` and a viewport is given in **level-0** pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from ..lru import ByteLRU

__all__ = [
    "DEFAULT_TILE_SIZE",
    "DEFAULT_CACHE_BYTES",
    "Tile",
    "TileCache",
    "level_for_zoom",
    "viewport_tiles",
    "magnification_zoom",
    "native_magnification",
]

#: Side of a viewer tile in the pixels of its level.
DEFAULT_TILE_SIZE = 512
#: Default memory cap of decoded tiles (about 190 tiles of 512 x 512 RGBA).
DEFAULT_CACHE_BYTES = 192 * 2**20


class Tile(NamedTuple):
    """One viewer tile: ``level``, its column and row in the tile grid, and its box in level pixels."""

    level: int
    col: int
    row: int
    box: tuple[int, int, int, int]

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.level, self.col, self.row)


def level_for_zoom(level_downsamples: Sequence[float], zoom: float, *, oversample: float = 1.0) -> int:
    """The level to draw at ``zoom`` screen pixels per level-0 pixel.

    The coarsest level that still gives at least one level pixel per screen pixel (times
    ``oversample``), so a level is shrunk on screen, never enlarged, except past level 0.

    Parameters
    ----------
    level_downsamples : sequence of float
        Level-0 pixels per level pixel, level 0 first.
    zoom : float
        Screen pixels per level-0 pixel (0.25 shows a 4x4 block of level 0 as one screen pixel).
    oversample : float
        Wanted level pixels per screen pixel; ``> 1`` picks a finer level (sharper, slower).

    Returns
    -------
    level : int
    """
    if zoom <= 0:
        raise ValueError(f"zoom must be positive, got {zoom}")
    wanted = 1.0 / (zoom * oversample)
    best = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= wanted * (1 + 1e-6):
            best = i
    return best


def viewport_tiles(
    level_dimensions: Sequence[tuple[int, int]],
    level_downsamples: Sequence[float],
    level: int,
    viewport: tuple[float, float, float, float],
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    margin: int = 0,
) -> list[Tile]:
    """The tiles of ``level`` that cover a level-0 viewport, nearest the viewport's centre first.

    Parameters
    ----------
    level_dimensions : sequence of (int, int)
        ``(width, height)`` of each level.
    level_downsamples : sequence of float
    level : int
    viewport : (float, float, float, float)
        ``(x, y, width, height)`` in level-0 pixels; it may extend past the slide.
    tile_size : int
        Tile side in level pixels. Tiles at the right and bottom edges are cut to the level.
    margin : int
        Extra rings of tiles around the viewport (prefetching for a pan).

    Returns
    -------
    tiles : list of Tile
        Empty when the viewport misses the slide.
    """
    lw, lh = level_dimensions[level]
    ds = float(level_downsamples[level])
    x, y, w, h = (float(v) for v in viewport)
    cols = math.ceil(lw / tile_size)
    rows = math.ceil(lh / tile_size)
    c0 = max(0, math.floor(x / ds / tile_size) - margin)
    r0 = max(0, math.floor(y / ds / tile_size) - margin)
    c1 = min(cols, math.ceil((x + w) / ds / tile_size) + margin)
    r1 = min(rows, math.ceil((y + h) / ds / tile_size) + margin)
    cx, cy = (x + w / 2) / ds / tile_size, (y + h / 2) / ds / tile_size
    out = []
    for r in range(r0, r1):
        for c in range(c0, c1):
            tx, ty = c * tile_size, r * tile_size
            out.append(Tile(level, c, r, (tx, ty, min(tile_size, lw - tx), min(tile_size, lh - ty))))
    out.sort(key=lambda t: (t.col + 0.5 - cx) ** 2 + (t.row + 0.5 - cy) ** 2)
    return out


def native_magnification(objective_power: float | None, mpp: tuple[float, float] | None) -> float | None:
    """The magnification of level 0: the recorded objective power, else ``10 / mpp`` (1 µm/px ≈ 10x).

    Returns None for an uncalibrated slide (neither is recorded).
    """
    if objective_power:
        return float(objective_power)
    if mpp:
        return 10.0 / max(mpp)
    return None


def magnification_zoom(magnification: float, objective_power: float | None, mpp: tuple[float, float] | None) -> float | None:
    """The zoom (screen pixels per level-0 pixel) that shows a slide at ``magnification``.

    ``magnification`` ``40`` on a 40x slide is ``1.0`` (one level-0 pixel per screen pixel), ``10`` is
    ``0.25``. None when the slide records neither objective power nor pixel size.
    """
    native = native_magnification(objective_power, mpp)
    return None if native is None else float(magnification) / native


class TileCache(ByteLRU):
    """Decoded tiles, least recently used dropped first, bounded by their total size in bytes.

    See :class:`gusa_core.lru.ByteLRU`; a tile's size is its ``nbytes``.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        super().__init__(max_bytes)
