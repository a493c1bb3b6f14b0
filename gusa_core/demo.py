"""A built-in demo data set: synthetic H&E breast tissue in the four BACH classes.

The images are drawn, not photographed, but they follow the look of an H&E
section closely enough to teach and to test with: pink eosin stroma with
collagen fibres, purple haematoxylin nuclei, white lumens and fat, and ducts
lined by epithelium. Each class has the appearance a pathologist names it by:

- **Normal**: lobules of small acini and a duct, one tidy layer of small
  uniform nuclei around open lumens, loose stroma and fat.
- **Benign** (fibroadenoma-like): abundant fibrous stroma, many elongated,
  compressed ducts with two orderly cell layers, and cysts.
- **InSitu**: large ducts filled with crowded, large, atypical nuclei
  (cribriform holes or central necrosis), each with an intact boundary.
- **Invasive**: no ducts; nests, cords and single cells with large,
  pleomorphic, dark nuclei infiltrating the stroma everywhere.

Colour follows the Beer-Lambert law: each pixel's optical density is the sum of
haematoxylin and eosin concentrations times their optical-density vectors,
measured from a real H&E slide. The coarse RoI mask covers the ductal or
atypical cell region as a smooth blob, the way BACH's annotators drew it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from . import DEFAULT_CLASSES
from .atomic import atomic_write_bytes
from .project import Project
from .slides.fields import BACH_FIELD_MPP, BACH_FIELD_SIZE

__all__ = ["generate_tissue", "generate_field", "demo_mpp", "write_demo_project", "DEMO_CLASSES", "DEMO_FIELD_UM"]

DEMO_CLASSES = tuple(DEFAULT_CLASSES)

#: ``(width, height)`` in µm of the tissue every demo image shows, whatever its pixel size: a
#: BACH microscopy field (2048 x 1536 px at 0.42 µm/px), the field slide inference assumes for a
#: run trained on patch images. A 512 x 384 demo image is that field at 1.68 µm/px.
DEMO_FIELD_UM = (BACH_FIELD_SIZE[0] * BACH_FIELD_MPP, BACH_FIELD_SIZE[1] * BACH_FIELD_MPP)

# Optical density of one unit of each stain (-ln(I / I0) for R, G, B); chosen so
# that nuclei, cytoplasm and stroma fall on the colours of the CMU-1 H&E slide.
_OD_H = np.array([0.80, 1.18, 0.50], np.float32)  # haematoxylin: blue-purple
_OD_E = np.array([0.21, 0.78, 0.40], np.float32)  # eosin: pink


class _Canvas:
    """Stain concentration layers being painted, plus the RoI mask."""

    def __init__(self, h: int, w: int, rng: np.random.Generator, scale: float):
        self.h, self.w, self.rng, self.s = h, w, rng, scale
        self.hema = np.zeros((h, w), np.float32)
        self.eosin = np.zeros((h, w), np.float32)
        self.nuclei = np.zeros((h, w), np.float32)  # haematoxylin of nuclei (textured later)
        self.clear = np.zeros((h, w), np.float32)  # 1 = empty space (lumen, fat, glass)
        self.roi = np.zeros((h, w), np.uint8)
        self.occupied: list[tuple[float, float, float]] = []  # (x, y, r) of structures

    # ---------------------------------------------------------------- primitives

    def ellipse(self, layer: np.ndarray, cx, cy, rx, ry, angle, value) -> None:
        cv2.ellipse(
            layer,
            (int(round(cx * 16)), int(round(cy * 16))),
            (max(1, int(round(rx * 16))), max(1, int(round(ry * 16)))),
            float(angle),
            0,
            360,
            float(value),
            -1,
            cv2.LINE_AA,
            4,
        )

    def nucleus(self, cx, cy, a, b, angle, darkness, *, nucleolus: float = 0.0) -> None:
        self.ellipse(self.nuclei, cx, cy, a, b, angle, darkness)
        if nucleolus > 0 and self.rng.random() < nucleolus:  # prominent nucleolus
            r = max(0.8, 0.28 * b)
            self.ellipse(self.nuclei, cx + self.rng.normal(0, 0.2 * b), cy + self.rng.normal(0, 0.2 * b), r, r, 0, darkness * 1.6)

    def free_spot(self, r: float, *, margin: float = 0.0, tries: int = 60, inside=None):
        """A centre (x, y) for a structure of radius ``r`` that overlaps none placed so far."""
        rng = self.rng
        for _ in range(tries):
            if inside is None:
                x = rng.uniform(-0.15 * r, self.w + 0.15 * r)
                y = rng.uniform(-0.15 * r, self.h + 0.15 * r)
            else:
                cx, cy, spread = inside
                ang, dist = rng.uniform(0, 2 * math.pi), spread * math.sqrt(rng.uniform())
                x, y = cx + dist * math.cos(ang), cy + dist * math.sin(ang)
            if all((x - ox) ** 2 + (y - oy) ** 2 > (r + orad + margin) ** 2 for ox, oy, orad in self.occupied):
                return x, y
        return None

    # ---------------------------------------------------------------- structures

    def duct(
        self,
        cx,
        cy,
        rx,
        ry,
        angle,
        *,
        lumen: float,
        nuc: tuple[float, float],
        pleo: float = 0.05,
        dark: float = 1.0,
        layers: int = 1,
        filled: bool = False,
        pattern: str = "solid",
        roi: bool = True,
    ) -> None:
        """A duct or acinus: basement membrane, myoepithelium, epithelium, lumen.

        ``lumen`` is the lumen's size relative to the duct; ``nuc`` the nuclear
        half-axes; ``pleo`` their relative spread (pleomorphism); ``filled``
        packs the whole duct with cells (in situ carcinoma).
        """
        rng, s = self.rng, self.s
        theta = math.radians(angle)
        cos_t, sin_t = math.cos(theta), math.sin(theta)

        def at(frac, t):
            ex, ey = frac * rx * math.cos(t), frac * ry * math.sin(t)
            return cx + ex * cos_t - ey * sin_t, cy + ex * sin_t + ey * cos_t

        # Basement membrane (dense eosin ring) and epithelial cytoplasm.
        self.ellipse(self.eosin, cx, cy, rx + 2.2 * s, ry + 2.2 * s, angle, 1.05)
        self.ellipse(self.eosin, cx, cy, rx, ry, angle, 0.42)
        self.ellipse(self.hema, cx, cy, rx, ry, angle, 0.16 + (0.08 if filled else 0.0))

        # Myoepithelial layer: flat, dark nuclei along the boundary.
        perim = math.pi * (3 * (rx + ry) - math.sqrt((3 * rx + ry) * (rx + 3 * ry)))
        n_myo = max(4, int(perim / (9.0 * s)))
        for t in np.linspace(0, 2 * math.pi, n_myo, endpoint=False) + rng.uniform(0, 1):
            x, y = at(0.97, t + rng.normal(0, 0.05))
            tang = math.degrees(math.atan2(ry * math.cos(t), -rx * math.sin(t))) + angle
            self.nucleus(x, y, 2.6 * s, 1.1 * s, tang, 0.95)

        if filled:
            a0, b0 = nuc
            region = np.zeros((self.h, self.w), np.uint8)
            self.ellipse(region, cx, cy, 0.9 * rx, 0.9 * ry, angle, 1)
            self.cells_in(region.astype(bool), 2.25 * a0, (a0, b0), pleo, dark)
            if pattern == "cribriform":
                for _ in range(int(rng.integers(3, 8))):
                    t, f = rng.uniform(0, 2 * math.pi), math.sqrt(rng.uniform(0, 0.55))
                    x, y = at(f, t)
                    r = rng.uniform(3.5, 7.0) * s
                    self.ellipse(self.clear, x, y, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, 180), 1.0)
            elif pattern == "comedo":
                # Central necrosis: pale pink debris with dust of nuclear fragments.
                r = lumen * min(rx, ry)
                self.ellipse(self.nuclei, cx, cy, lumen * rx, lumen * ry, angle, 0.0)
                self.ellipse(self.hema, cx, cy, lumen * rx, lumen * ry, angle, 0.10)
                self.ellipse(self.eosin, cx, cy, lumen * rx, lumen * ry, angle, 0.55)
                for _ in range(int(r * r / (9 * s * s))):
                    t, f = rng.uniform(0, 2 * math.pi), math.sqrt(rng.uniform(0, 0.9))
                    x, y = at(f * lumen, t)
                    d = rng.uniform(0.6, 1.4) * s
                    self.nucleus(x, y, d, d, 0, rng.uniform(0.9, 1.5))
        else:
            a0, b0 = nuc
            # Luminal cells: nuclei in one (or more) tidy rows between lumen and boundary.
            fracs = [lumen + (0.92 - lumen) * (i + 0.5) / layers for i in range(layers)]
            for frac in fracs:
                row_perim = perim * frac
                n = max(5, int(row_perim / (2.3 * b0 + 1.4 * s)))
                for t in np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(0, 1):
                    x, y = at(frac + rng.normal(0, 0.02), t + rng.normal(0, 0.03))
                    radial = math.degrees(math.atan2(rx * math.sin(t), ry * math.cos(t))) + angle
                    k = np.exp(rng.normal(0, pleo))
                    self.nucleus(x, y, a0 * k, b0 * k, radial, dark * rng.uniform(0.9, 1.1))
            if lumen > 0:
                self.ellipse(self.clear, cx, cy, lumen * rx, lumen * ry, angle, 1.0)
                self.ellipse(self.nuclei, cx, cy, lumen * rx, lumen * ry, angle, 0.0)
                if rng.random() < 0.35:  # pale pink secretion in the lumen
                    self.ellipse(self.clear, cx, cy, 0.6 * lumen * rx, 0.6 * lumen * ry, angle, 0.55)
        if roi:
            pad = 6 * s
            self.ellipse(self.roi, cx, cy, rx + pad, ry + pad, angle, 255)
        self.occupied.append((cx, cy, max(rx, ry)))

    def fat(self, cx, cy, radius, cell: float) -> None:
        """A cluster of adipocytes: white polygons separated by thin pink septa."""
        rng, s = self.rng, self.s
        step = 2 * cell
        xs = np.arange(cx - radius, cx + radius + step, step)
        ys = np.arange(cy - radius, cy + radius + step, step * 0.87)
        region = np.zeros_like(self.clear)
        cv2.ellipse(region, (int(cx), int(cy)), (int(radius), int(radius * rng.uniform(0.7, 1.0))), rng.uniform(0, 180), 0, 360, 1.0, -1)
        septa = np.zeros_like(self.clear)
        for j, y in enumerate(ys):
            for x in xs + (step / 2 if j % 2 else 0):
                r = cell * rng.uniform(1.05, 1.3)
                cv2.ellipse(septa, (int(x + rng.normal(0, 0.15 * cell)), int(y + rng.normal(0, 0.15 * cell))),
                            (int(r), int(r * rng.uniform(0.8, 1.0))), rng.uniform(0, 180), 0, 360, 1.0, max(1, int(1.2 * s)), cv2.LINE_AA)
        fat = region * (1.0 - np.clip(septa, 0, 1))
        np.maximum(self.clear, fat, out=self.clear)
        self.eosin += 0.5 * region * septa  # septa are thin and pink
        for _ in range(int(radius * radius / (700 * s * s))):  # a few flat adipocyte nuclei on septa
            ang = rng.uniform(0, 2 * math.pi)
            d = radius * math.sqrt(rng.uniform())
            self.nucleus(cx + d * math.cos(ang), cy + d * math.sin(ang), 3 * s, 1 * s, rng.uniform(0, 180), 0.9)
        self.occupied.append((cx, cy, radius))

    def cells_in(self, region: np.ndarray, spacing: float, nuc, pleo, dark, *, keep: float = 1.0) -> None:
        """Scatter nuclei over a boolean region on a jittered grid."""
        rng, h, w = self.rng, self.h, self.w
        gy, gx = np.mgrid[0:h:spacing, 0:w:spacing].astype(np.float32)
        gx = gx + rng.uniform(-0.45, 0.45, gx.shape).astype(np.float32) * spacing
        gy = gy + rng.uniform(-0.45, 0.45, gy.shape).astype(np.float32) * spacing
        ix, iy = np.clip(gx.astype(int), 0, w - 1), np.clip(gy.astype(int), 0, h - 1)
        sel = region[iy, ix] & (rng.random(gx.shape) < keep)
        a0, b0 = nuc
        xs, ys = gx[sel], gy[sel]
        ks = np.exp(rng.normal(0, pleo, xs.size))
        bs = rng.uniform(0.7, 1.0, xs.size)
        angs = rng.uniform(0, 180, xs.size)
        darks = dark * rng.uniform(0.8, 1.3, xs.size)
        for x, y, k, bb, ang, d in zip(xs, ys, ks, bs, angs, darks):
            self.nucleus(x, y, a0 * k, b0 * k * bb, ang, d, nucleolus=0.4)


# -------------------------------------------------------------------- textures


def _smooth_noise(rng, h, w, sigma) -> np.ndarray:
    """Zero-mean, unit-variance noise with features about ``sigma`` pixels wide."""
    f = max(1, int(sigma // 3))
    small = rng.standard_normal((h // f + 2, w // f + 2)).astype(np.float32)
    small = cv2.GaussianBlur(small, (0, 0), max(0.5, sigma / f))
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) if f > 1 else small[:h, :w]
    out = out[:h, :w]
    return (out - out.mean()) / (out.std() + 1e-6)


def _line_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _fibres(rng, h, w, s: float) -> np.ndarray:
    """Wavy collagen: noise smeared along locally varying directions, in [-1, 1]."""
    base = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.1 * s)
    length = max(5, int(25 * s) | 1)
    weights = []
    layers = []
    for _ in range(3):
        ang = rng.uniform(0, math.pi)
        layers.append(cv2.filter2D(base, -1, _line_kernel(length, ang)))
        weights.append(np.exp(1.8 * _smooth_noise(rng, h, w, 45 * s)))
    total = sum(weights)
    fib = sum(l * wgt for l, wgt in zip(layers, weights)) / total
    # Waviness: bend the pattern with a smooth displacement field.
    dx = _smooth_noise(rng, h, w, 25 * s) * 4.0 * s
    dy = _smooth_noise(rng, h, w, 25 * s) * 4.0 * s
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    fib = cv2.remap(fib, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.tanh(fib / (fib.std() + 1e-6) * 1.1)


def _stroma(cv: _Canvas, *, density: float, fibre: float, cracks: float, cellularity: float) -> None:
    """Eosin stroma with fibres and clefts, and its spindle-shaped fibroblasts."""
    rng, h, w, s = cv.rng, cv.h, cv.w, cv.s
    fib = _fibres(rng, h, w, s)
    patch = _smooth_noise(rng, h, w, 30 * s)
    cv.eosin += np.clip(density * (1.0 + fibre * 0.45 * fib + 0.15 * patch), 0.05, None)
    cv.hema += 0.04 + 0.02 * patch
    cleft = (fib < -0.85 + (1 - cracks) * -0.2) & (_smooth_noise(rng, h, w, 20 * s) > 0.3)
    cv.clear[cleft] = np.maximum(cv.clear[cleft], 0.75)
    # Fibroblasts: thin elongated nuclei.
    n = int(cellularity * h * w / (900 * s * s))
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
    for x, y, ang in zip(xs, ys, rng.uniform(0, 180, n)):
        cv.nucleus(x, y, rng.uniform(3.0, 5.0) * s, rng.uniform(0.8, 1.3) * s, ang, rng.uniform(0.8, 1.1))


def _lymphocytes(cv: _Canvas, n: int) -> None:
    rng, s = cv.rng, cv.s
    for x, y in zip(rng.uniform(0, cv.w, n), rng.uniform(0, cv.h, n)):
        r = rng.uniform(1.8, 2.4) * s
        cv.nucleus(x, y, r, r * 0.9, 0, 1.5)


# -------------------------------------------------------------------- classes


def _normal(cv: _Canvas) -> None:
    rng, s = cv.rng, cv.s
    _stroma(cv, density=0.62, fibre=1.0, cracks=0.5, cellularity=0.35)
    for _ in range(int(rng.integers(1, 3))):  # a large duct
        r = rng.uniform(22, 32) * s
        spot = cv.free_spot(r, margin=10 * s)
        if spot:
            cv.duct(*spot, r * rng.uniform(1.0, 1.5), r, rng.uniform(0, 180), lumen=rng.uniform(0.45, 0.6), nuc=(3.0 * s, 2.0 * s))
    for _ in range(int(rng.integers(2, 4))):  # lobules of small acini
        spread = rng.uniform(45, 65) * s
        centre = cv.free_spot(spread * 0.6, margin=5 * s)
        if centre is None:
            continue
        # Intralobular stroma: looser and paler than the rest.
        loose = np.zeros_like(cv.eosin)
        cv.ellipse(loose, centre[0], centre[1], spread * 1.15, spread * 0.95, rng.uniform(0, 180), 1.0)
        loose = cv2.GaussianBlur(loose, (0, 0), 8 * s)
        cv.eosin *= 1.0 - 0.45 * loose
        for _ in range(int(rng.integers(9, 16))):
            r = rng.uniform(9.0, 13.0) * s
            spot = cv.free_spot(r, margin=4 * s, inside=(centre[0], centre[1], spread))
            if spot:
                cv.duct(*spot, r * rng.uniform(1.0, 1.3), r, rng.uniform(0, 180), lumen=rng.uniform(0.3, 0.45), nuc=(2.6 * s, 1.9 * s))
    for _ in range(int(rng.integers(0, 3))):
        r = rng.uniform(35, 70) * s
        spot = cv.free_spot(r)
        if spot:
            cv.fat(*spot, r, rng.uniform(9, 13) * s)
    _lymphocytes(cv, int(rng.integers(5, 20)))


def _benign(cv: _Canvas) -> None:
    rng, s = cv.rng, cv.s
    _stroma(cv, density=0.78, fibre=1.2, cracks=0.3, cellularity=0.9)
    for _ in range(int(rng.integers(1, 3))):  # cysts lined by flat epithelium
        r = rng.uniform(22, 40) * s
        spot = cv.free_spot(r, margin=6 * s)
        if spot:
            cv.duct(*spot, r * rng.uniform(1.0, 1.3), r, rng.uniform(0, 180), lumen=0.86, nuc=(2.8 * s, 1.4 * s))
    for _ in range(int(rng.integers(8, 16))):  # compressed, elongated (intracanalicular) ducts
        ry = rng.uniform(8, 13) * s
        rx = ry * rng.uniform(2.0, 4.0)
        spot = cv.free_spot(rx * 0.8, margin=3 * s)
        if spot:
            cv.duct(*spot, rx, ry, rng.uniform(0, 180), lumen=rng.uniform(0.15, 0.3), nuc=(3.2 * s, 2.2 * s), layers=2, pleo=0.07)


def _insitu(cv: _Canvas) -> None:
    rng, s = cv.rng, cv.s
    _stroma(cv, density=0.70, fibre=0.9, cracks=0.3, cellularity=0.45)
    _lymphocytes(cv, int(rng.integers(20, 60)))
    n_ducts = int(rng.integers(2, 5))
    for i in range(n_ducts):
        r = rng.uniform(38, 70) * s * (1.0 if i == 0 else 0.8)
        spot = cv.free_spot(r, margin=8 * s)
        if spot is None:
            continue
        pattern = rng.choice(["solid", "cribriform", "comedo"], p=[0.4, 0.35, 0.25])
        cv.duct(
            *spot, r * rng.uniform(1.0, 1.35), r, rng.uniform(0, 180),
            lumen=rng.uniform(0.3, 0.45), nuc=(4.6 * s, 3.6 * s), pleo=0.22, dark=0.85,
            filled=True, pattern=str(pattern),
        )


def _invasive(cv: _Canvas) -> None:
    rng, h, w, s = cv.rng, cv.h, cv.w, cv.s
    _stroma(cv, density=0.58, fibre=0.7, cracks=0.2, cellularity=0.4)
    # Tumour occupies most of the field; within it, nests and cords of cells.
    tumour = _smooth_noise(rng, h, w, 60 * s) > rng.uniform(-1.2, -0.5)
    nests = _smooth_noise(rng, h, w, 7 * s) > 0.35
    cords = np.abs(_smooth_noise(rng, h, w, 14 * s)) < 0.22
    region = tumour & (nests | cords)
    # Tumour-cell cytoplasm: pinker-purple than stroma.
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.5 * s)
    cv.hema += 0.16 * soft
    cv.eosin += 0.05 * soft
    cv.cells_in(region, 8.5 * s, (4.6 * s, 3.7 * s), 0.28, 0.9)
    cv.cells_in(tumour & ~region, 17 * s, (4.2 * s, 3.4 * s), 0.28, 0.9, keep=0.6)  # single cells
    _lymphocytes(cv, int(rng.integers(10, 40)))
    roi = cv2.GaussianBlur(tumour.astype(np.float32), (0, 0), 6 * s) > 0.5
    cv.roi[roi] = 255


def _focus_in_normal(lesion: _Canvas, focus: float) -> _Canvas:
    """The lesion kept in one smooth focus covering ``focus`` of the field, normal tissue around it."""
    rng, h, w, s = lesion.rng, lesion.h, lesion.w, lesion.s
    around = _Canvas(h, w, rng, s)
    _normal(around)
    # One blob: a smooth bump at a random centre, shaped by noise, cut at the quantile that gives its area.
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bump = -(((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2) * 8.0 + 0.35 * _smooth_noise(rng, h, w, 40 * s)
    inside = (bump > np.quantile(bump, 1.0 - focus)).astype(np.float32)
    alpha = cv2.GaussianBlur(inside, (0, 0), 4 * s)
    for name in ("hema", "eosin", "nuclei", "clear"):
        a, b = getattr(around, name), getattr(lesion, name)
        setattr(around, name, a + alpha * (b - a))
    around.roi = np.where(inside > 0, lesion.roi, np.uint8(0))
    return around


_PAINTERS = {"Normal": _normal, "Benign": _benign, "InSitu": _insitu, "Invasive": _invasive}


def _render(cv: _Canvas) -> np.ndarray:
    rng, h, w, s = cv.rng, cv.h, cv.w, cv.s
    # Chromatin texture: nuclei are not flat blobs.
    grain = rng.random((h, w), dtype=np.float32) * np.float32(1.2) + np.float32(0.4)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.6 * s)
    nuclei = cv2.GaussianBlur(cv.nuclei, (0, 0), 0.45 * s) * grain
    clear = cv2.GaussianBlur(cv.clear, (0, 0), 0.8 * s)
    clear = np.clip(clear, 0.0, 1.0)
    hema = (cv.hema + nuclei) * (1.0 - clear)
    eosin = cv.eosin * (1.0 - clear) * (1.0 - 0.45 * np.clip(nuclei, 0, 1))
    # Per-image stain strength, as slides vary.
    hs, es = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
    od = cv2.merge([hema, eosin])  # (H, W, 2) -> optical density per RGB channel
    matrix = np.stack([_OD_H * hs, _OD_E * es], axis=1).astype(np.float32)  # (3, 2)
    od = cv2.transform(od, np.concatenate([-matrix, np.full((3, 1), -0.04, np.float32)], axis=1))
    # 0.04: glass and mounting medium are not perfectly white.
    rgb = np.exp(od, out=od)
    rgb *= np.float32(255.0)
    rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(2.0)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.5)
    rgb += np.float32(0.5)
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)


def generate_tissue(
    label: str,
    *,
    size: tuple[int, int] = (512, 384),
    rng: np.random.Generator | int | None = None,
    focus: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic H&E image of a class and its coarse RoI mask.

    Parameters
    ----------
    label : {"Normal", "Benign", "InSitu", "Invasive"}
    size : tuple of int
        ``(width, height)``. Structures scale with the size (512x384 is the
        reference scale): an image of any size shows the same field,
        :data:`DEMO_FIELD_UM` (see :func:`demo_mpp`).
    rng : numpy.random.Generator or int, optional
    focus : float, optional
        For a lesion class (not Normal): the share of the field, in (0, 1),
        the lesion covers as one focus in otherwise normal breast tissue, as
        in the hard fields of a real cohort, labelled by a small lesion. None
        draws the lesion over the whole field.

    Returns
    -------
    image : ndarray of shape (H, W, 3), uint8
        RGB.
    mask : ndarray of shape (H, W), uint8
        255 over the ductal / atypical cell region (drawn coarsely), 0 elsewhere.
    """
    if focus is not None and not 0.0 < float(focus) < 1.0:
        raise ValueError(f"focus must lie in (0, 1), got {focus!r}")
    if label not in _PAINTERS:
        raise ValueError(f"unknown class {label!r}; expected one of {sorted(_PAINTERS)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16:
        raise ValueError(f"size too small: {size!r}")
    cv = _Canvas(h, w, rng, min(w / 512.0, h / 384.0))
    _PAINTERS[label](cv)
    if focus is not None and label != "Normal":
        cv = _focus_in_normal(cv, float(focus))
    image = _render(cv)
    # Coarse, smooth RoI: close the gaps between structures and round the outline.
    k = max(3, int(14 * cv.s) | 1)
    roi = cv2.morphologyEx(cv.roi, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    roi = cv2.GaussianBlur(roi, (0, 0), 4 * cv.s)
    mask = np.where(roi > 127, np.uint8(255), np.uint8(0))
    return image, mask


def demo_mpp(size: tuple[int, int]) -> float:
    """µm per pixel of a demo image of ``size`` ``(width, height)``: :data:`DEMO_FIELD_UM` across its width."""
    return DEMO_FIELD_UM[0] / float(size[0])


def generate_field(
    label: str,
    *,
    mpp: float,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one demo field of a class at ``mpp`` µm per pixel (for painting slides).

    The field covers :data:`DEMO_FIELD_UM`, so a slide scanned at ``mpp`` and tiled with these
    fields shows, in each field footprint slide inference reads for a run trained on demo
    images, the tissue such a run was trained on, at the same magnification.

    Parameters
    ----------
    label : {"Normal", "Benign", "InSitu", "Invasive"}
    mpp : float
        µm per pixel; 1.68 gives a 512 x 384 image (the demo project's default).
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    image, mask
        As :func:`generate_tissue`, of ``round(DEMO_FIELD_UM / mpp)`` pixels.
    """
    if not mpp > 0:
        raise ValueError(f"mpp must be positive, got {mpp!r}")
    size = (int(round(DEMO_FIELD_UM[0] / mpp)), int(round(DEMO_FIELD_UM[1] / mpp)))
    return generate_tissue(label, size=size, rng=rng)


def write_demo_project(
    folder: str | os.PathLike,
    *,
    seed: int = 0,
    per_class: int | Mapping[str, int] = 10,
    unlabelled: int = 4,
    size: tuple[int, int] = (512, 384),
    masked_fraction: float = 0.8,
    small_focus: float = 0.0,
    lock: str | None = None,
):
    """Write a ready-to-train demo project of synthetic H&E images.

    ``lock``: hold the folder's write lock while writing, naming this purpose
    (see `gusa_core.project.Project.open`); the caller calls ``close()``.

    Parameters
    ----------
    folder : path-like
        The project folder (created; must not already hold a project).
    seed : int
        Equal seeds give identical projects.
    per_class : int or mapping of str to int
        Labelled images per class (the four BACH classes), or a count for
        each class by name (a pool as uneven as a real cohort's; a class
        left out gets none).
    unlabelled : int
        Extra images without a label (for trying out classification).
    size : tuple of int
        ``(width, height)`` of each image.
    masked_fraction : float
        Share of labelled images that get an RoI mask (the paper's point is
        that not every image needs one).
    small_focus : float
        Share of the lesion images (Benign, InSitu, Invasive) drawn as one
        small focus, 8-30 % of the field, in normal tissue
        (:func:`generate_tissue`'s ``focus``): the hard cases of a real
        cohort. 0 (the default) draws every lesion over its whole field.

    Returns
    -------
    project : gusa_core.project.Project
        Saved, with images under ``<folder>/images/``.
    """
    folder = Path(folder)
    if isinstance(per_class, Mapping):
        unknown = sorted(set(per_class) - set(DEMO_CLASSES))
        if unknown:
            raise ValueError(f"unknown demo classes {unknown}; the classes are {list(DEMO_CLASSES)}")
        counts = {label: int(per_class.get(label, 0)) for label in DEMO_CLASSES}
    else:
        counts = {label: int(per_class) for label in DEMO_CLASSES}
    rng = np.random.default_rng(seed)
    project = Project.create(folder, classes=DEMO_CLASSES, lock=lock)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    jobs: list[tuple[str, str | None]] = []
    for label in DEMO_CLASSES:
        for i in range(counts[label]):
            jobs.append((f"{label.lower()}_{i + 1:03d}", label))
    for i in range(unlabelled):
        jobs.append((f"unlabelled_{i + 1:03d}", None))
    # Which labelled images get masks: a fixed share per class, chosen by the seed.
    masked = set()
    for label in DEMO_CLASSES:
        picks = rng.permutation(counts[label])[: int(round(masked_fraction * counts[label]))]
        masked.update(f"{label.lower()}_{p + 1:03d}" for p in picks)
    hidden_labels = rng.choice(len(DEMO_CLASSES), size=unlabelled) if unlabelled else []

    for j, (name, label) in enumerate(jobs):
        draw_label = label if label is not None else DEMO_CLASSES[int(hidden_labels[j - len(jobs) + unlabelled])]
        focus = None
        if small_focus > 0 and draw_label != "Normal":
            pick = np.random.default_rng([seed, j, 1])  # its own stream: other images stay as they were
            focus = float(pick.uniform(0.08, 0.30)) if pick.random() < small_focus else None
        image, mask = generate_tissue(draw_label, size=size, rng=np.random.default_rng([seed, j]), focus=focus)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:  # pragma: no cover - cv2 always encodes uint8 RGB
            raise RuntimeError(f"cannot encode demo image {name}")
        path = atomic_write_bytes(images_dir / f"{name}.png", buf.tobytes())
        record = project.add_image(path, label=label)
        if label is not None and name in masked and mask.any():
            project.save_mask(record.id, mask, save_manifest=False)
    project.save()
    return project
