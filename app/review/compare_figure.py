"""The exported comparison figure (pure rendering): the paper's Fig. 6 layout for any image.

Every panel is the image scaled to :data:`PANEL_WIDTH` (512) pixels wide,
height ``round(512 * H / W)``; panels sit in one row with :data:`MARGIN`
pixels around and between them, under a title band of :data:`TITLE_HEIGHT`
pixels; a colour bar band of :data:`COLORBAR_HEIGHT` pixels runs along the
bottom. :func:`export_size` gives the size in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter

from app.review.colormaps import DEFAULT_COLORMAP, colorbar_image

__all__ = ["PANEL_WIDTH", "MARGIN", "TITLE_HEIGHT", "COLORBAR_HEIGHT", "PanelContent", "export_size",
           "render_comparison", "save_png"]

#: Width of each panel of the exported figure, in pixels.
PANEL_WIDTH = 512
#: Space around and between panels in the exported figure.
MARGIN = 12
#: Height of the title band above the panels (two lines of text).
TITLE_HEIGHT = 46
#: Height of the colour-bar band below the panels.
COLORBAR_HEIGHT = 40


@dataclass
class PanelContent:
    """What one panel shows: a title, a subtitle and an RGBA layer over the image."""

    title: str
    subtitle: str = ""
    overlay: np.ndarray | None = None  # (H, W, 4) uint8 at image resolution


# ------------------------------------------------------------------ export (pure rendering)
def export_size(n_panels: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """Size ``(width, height)`` in pixels of the exported figure.

    Parameters
    ----------
    n_panels : int
        Number of panels (image + attention maps).
    image_size : tuple of int
        ``(width, height)`` of the image.
    """
    w, h = image_size
    panel_h = max(1, round(PANEL_WIDTH * h / w))
    width = n_panels * PANEL_WIDTH + (n_panels + 1) * MARGIN
    height = MARGIN + TITLE_HEIGHT + panel_h + COLORBAR_HEIGHT + MARGIN
    return width, height


def _qimage_rgb(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _qimage_rgba(rgba: np.ndarray) -> QImage:
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    if array.shape[1] == w and array.shape[0] == h:
        return array
    shrink = array.shape[1] > w
    return cv2.resize(array, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def render_comparison(image: np.ndarray, panels: list[PanelContent], *, colormap: str = DEFAULT_COLORMAP,
                      colorbar_label: str = "attention") -> QImage:
    """Draw the comparison figure (see the module docstring for the layout).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
    panels : list of PanelContent
        In order, left to right; overlays at the image's resolution.
    colormap : str
        The colour map of the attention overlays (for the colour bar).
    colorbar_label : str
        Text under the colour bar.

    Returns
    -------
    QImage
        ``export_size(len(panels), (W, H))`` pixels, RGB.
    """
    h, w = image.shape[:2]
    width, height = export_size(len(panels), (w, h))
    panel_h = height - MARGIN - TITLE_HEIGHT - COLORBAR_HEIGHT - MARGIN
    small = _resize(np.ascontiguousarray(image[..., :3]), (PANEL_WIDTH, panel_h))
    out = QImage(width, height, QImage.Format.Format_RGB32)
    out.fill(QColor(255, 255, 255))
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    base = _qimage_rgb(small)
    title_font = QFont()
    title_font.setPixelSize(17)
    title_font.setBold(True)
    sub_font = QFont()
    sub_font.setPixelSize(14)
    top = MARGIN + TITLE_HEIGHT
    for i, panel in enumerate(panels):
        left = MARGIN + i * (PANEL_WIDTH + MARGIN)
        painter.setPen(QColor(20, 20, 20))
        painter.setFont(title_font)
        painter.drawText(QRectF(left, MARGIN, PANEL_WIDTH, TITLE_HEIGHT / 2), Qt.AlignmentFlag.AlignCenter, panel.title)
        painter.setFont(sub_font)
        painter.setPen(QColor(60, 60, 60))
        painter.drawText(QRectF(left, MARGIN + TITLE_HEIGHT / 2, PANEL_WIDTH, TITLE_HEIGHT / 2),
                         Qt.AlignmentFlag.AlignCenter, panel.subtitle)
        target = QRectF(left, top, PANEL_WIDTH, panel_h)
        painter.drawImage(target, base)
        if panel.overlay is not None:
            painter.drawImage(target, _qimage_rgba(_resize(panel.overlay, (PANEL_WIDTH, panel_h))))
        painter.setPen(QColor(120, 120, 120))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(target.adjusted(-0.5, -0.5, 0.5, 0.5))
    # Colour bar under the attention panels (all but the first).
    n_att = max(1, len(panels) - 1)
    bar_left = MARGIN + (PANEL_WIDTH + MARGIN) if len(panels) > 1 else MARGIN
    bar_w = min(PANEL_WIDTH, n_att * PANEL_WIDTH)
    bar_left += (n_att * (PANEL_WIDTH + MARGIN) - MARGIN - bar_w) / 2
    bar_top = top + panel_h + 8
    bar = _qimage_rgb(colorbar_image(colormap, width=int(bar_w), height=12))
    painter.drawImage(QRectF(bar_left, bar_top, bar_w, 12), bar)
    painter.setPen(QColor(60, 60, 60))
    painter.drawRect(QRectF(bar_left, bar_top, bar_w, 12))
    painter.setFont(sub_font)
    text_top = bar_top + 13
    painter.drawText(QRectF(bar_left - 30, text_top, 60, 18), Qt.AlignmentFlag.AlignCenter, "0")
    painter.drawText(QRectF(bar_left + bar_w - 30, text_top, 60, 18), Qt.AlignmentFlag.AlignCenter, "1")
    painter.drawText(QRectF(bar_left, text_top, bar_w, 18), Qt.AlignmentFlag.AlignCenter, colorbar_label)
    painter.end()
    return out


def save_png(path: str | Path, qimage: QImage) -> Path:
    """Write ``qimage`` to ``path`` as PNG, atomically."""
    from gusa_core.atomic import atomic_write_bytes
    from gusa_core.errors import GusaError

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    ok = qimage.save(buffer, "PNG")
    buffer.close()
    if not ok:
        raise GusaError(f"cannot encode the comparison as PNG for {path}")
    return atomic_write_bytes(path, bytes(data.data()))
