"""Whole-slide images: one :class:`Slide` over OpenSlide, tifffile and flat images, and tissue geometry.

See :mod:`gusa_core.slides.reader` for the coordinate conventions.
"""

from .reader import (
    DEFAULT_MAX_PIXELS,
    MRXS_INDEX,
    SLIDE_SUFFIXES,
    Slide,
    is_pyramidal,
    is_slide_path,
    mrxs_owner,
    open_slide,
)
from .tissue import detect_tissue, field_grid, tissue_fraction

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SLIDE_SUFFIXES",
    "Slide",
    "open_slide",
    "is_slide_path",
    "is_pyramidal",
    "mrxs_owner",
    "MRXS_INDEX",
    "detect_tissue",
    "field_grid",
    "tissue_fraction",
]
