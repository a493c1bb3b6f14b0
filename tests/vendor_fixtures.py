"""Small but real vendor slides for tests: Leica SCN, Hamamatsu NDPI and 3DHISTECH MIRAX.

Each writer lays its file out the way the scanner does and the way OpenSlide's vendor driver
(``openslide/src/openslide-vendor-{leica,hamamatsu,mirax}.c``) parses it, so OpenSlide opens it
with that driver (``openslide.vendor`` is ``leica``, ``hamamatsu`` or ``mirax``) and reads the
pixel size and objective from the vendor's own metadata:

- **SCN**: a tiled BigTIFF whose first ImageDescription is Leica's ``<scn>`` XML. The XML
  places a macro image (the whole glass, directory 0) and one or more *main images* (scanned
  regions, each a pyramid of directories) in a *collection* measured in nanometres. OpenSlide's
  level 0 is the whole collection; outside the scanned regions it is transparent.
- **NDPI**: a TIFF whose every directory is one strip holding a whole JPEG with restart
  markers (OpenSlide's "tiles" are the restart intervals), tagged with Hamamatsu's private
  tags: 65420 (format flag), 65421 (source lens = magnification of the directory; -1 for the
  macro), 65424 (focal plane) and 65426 (restart-marker offsets).
- **MRXS**: ``name.mrxs`` beside a folder ``name/`` holding ``Slidedat.ini`` (levels, pixel
  size, objective), ``Index.dat`` (a linked list of image records per zoom level) and
  ``Data0000.dat`` (the JPEG camera images). Images with no tissue are left out, as the
  scanner does; OpenSlide reads them as transparent.

Every writer takes a *painter* (see :mod:`slide_fixtures`): pixel ``(X, Y)`` of the slide at
downsample ``d`` is ``painter(X * d, Y * d, 1, 1, d)``, so a test predicts the pixels of any
level without decoding a file.
"""

from __future__ import annotations

import base64
import math
import struct
import uuid as _uuid
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import tifffile

__all__ = ["GradientPainter", "write_scn", "write_ndpi", "write_mrxs", "painted", "SCN_NAMESPACE"]

SCN_NAMESPACE = "http://www.leica-microsystems.com/scn/2010/10/01"


class GradientPainter:
    """A smooth pattern unique to each position: red ramps along x, green along y, blue waves.

    JPEG keeps it within a few levels, and a one-pixel shift of a level-0 read changes the blue
    channel by several levels, so a read that lands off its place is caught.

    Parameters
    ----------
    width, height : int
        Level-0 size of the slide.
    period : float
        Wavelength of the blue waves in level-0 pixels.
    """

    def __init__(self, width: int, height: int, *, period: float = 48.0):
        self.width, self.height, self.period = int(width), int(height), float(period)

    def __call__(self, x0: float, y0: float, w: int, h: int, downsample: float = 1.0) -> np.ndarray:
        xs = x0 + (np.arange(w, dtype=np.float64) + 0.5) * downsample
        ys = y0 + (np.arange(h, dtype=np.float64) + 0.5) * downsample
        x, y = np.meshgrid(xs, ys)
        out = np.empty((h, w, 3), np.uint8)
        out[..., 0] = np.clip(30 + 200 * x / self.width, 0, 255)
        out[..., 1] = np.clip(30 + 200 * y / self.height, 0, 255)
        k = 2 * math.pi / (self.period * max(1.0, downsample / 4))  # no finer than a few pixels at any level
        out[..., 2] = np.clip(128 + 90 * np.sin(k * x) * np.cos(k * y), 0, 255)
        return out


def painted(painter, level_box, downsample: float, regions=None, background=(255, 255, 255)) -> np.ndarray:
    """What a slide written from ``painter`` holds in ``level_box`` (level pixels) at ``downsample``.

    Parameters
    ----------
    painter : callable
    level_box : (int, int, int, int)
        ``(x, y, w, h)`` in the level's pixels.
    downsample : float
    regions : list of (int, int, int, int), optional
        Level-0 rectangles that were scanned; elsewhere the slide shows ``background``.
    """
    x, y, w, h = level_box
    out = np.asarray(painter(x * downsample, y * downsample, w, h, float(downsample)), np.uint8).copy()
    if regions is not None:
        xs = (x + np.arange(w) + 0.5) * downsample
        ys = (y + np.arange(h) + 0.5) * downsample
        inside = np.zeros((h, w), bool)
        for rx, ry, rw, rh in regions:
            inside |= ((ys >= ry) & (ys < ry + rh))[:, None] & ((xs >= rx) & (xs < rx + rw))[None, :]
        out[~inside] = background
    return out


def _tile_stream(painter, x0, y0, w, h, ds, tile, jpeg, quality):
    """Tiles of a ``w x h`` level image whose top-left is level-0 ``(x0, y0)``, row by row."""
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            tw, th = min(tile, w - tx), min(tile, h - ty)
            full = np.empty((tile, tile, 3), np.uint8)
            full[:] = 255
            full[:th, :tw] = painter(x0 + tx * ds, y0 + ty * ds, tw, th, float(ds))
            yield imagecodecs.jpeg_encode(full, level=quality) if jpeg else full


# --------------------------------------------------------------------------------------- SCN


def _scn_xml(coll_nm, images, barcode: str) -> str:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<scn xmlns="{SCN_NAMESPACE}">',
        f'  <collection name="generated" uuid="{_uuid.uuid4()}" sizeX="{coll_nm[0]}" sizeY="{coll_nm[1]}">',
        f"    <barcode>{base64.b64encode(barcode.encode()).decode()}</barcode>",
    ]
    for im in images:
        dims = "\n".join(
            f'          <dimension sizeX="{w}" sizeY="{h}" r="{r}" ifd="{ifd}"/>' for r, (ifd, w, h) in enumerate(im["dims"])
        )
        parts += [
            f'    <image name="{im["name"]}" uuid="{_uuid.uuid4()}">',
            "      <creationDate>2026-01-02T03:04:05.06Z</creationDate>",
            '      <device model="Leica SCN400;Leica SCN" version="1.5.1.10804 2012/05/10 13:29:07;1.5.1.10864"/>',
            f'      <pixels sizeX="{im["dims"][0][1]}" sizeY="{im["dims"][0][2]}">',
            dims,
            "      </pixels>",
            f'      <view sizeX="{im["nm"][2]}" sizeY="{im["nm"][3]}" offsetX="{im["nm"][0]}" offsetY="{im["nm"][1]}" spacingZ="0"/>',
            "      <scanSettings>",
            f'        <objectiveSettings><objective>{im["objective"]}</objective></objectiveSettings>',
            "        <illuminationSettings>",
            "          <numericalAperture>0.4</numericalAperture>",
            "          <illuminationSource>brightfield</illuminationSource>",
            "        </illuminationSettings>",
            "      </scanSettings>",
            "    </image>",
        ]
    parts += ["  </collection>", "</scn>"]
    return "\n".join(parts)


def write_scn(
    path,
    width: int,
    height: int,
    *,
    regions: list[tuple[int, int, int, int]] | None = None,
    painter=None,
    levels: tuple[int, ...] = (1, 4, 16),
    mpp: float = 0.5,
    objective: int = 20,
    tile: int = 256,
    jpeg: bool = True,
    quality: int = 92,
    macro_width: int = 256,
    resolution_tags: bool = True,
) -> Path:
    """Write a Leica SCN: a macro image of the whole glass and scanned regions as pyramids.

    Parameters
    ----------
    path : path-like
    width, height : int
        Level-0 size of the collection (the glass), which OpenSlide reports as level 0.
    regions : list of (x, y, w, h), optional
        Scanned regions (Leica's main images) in level-0 pixels, each a multiple of the largest
        downsample; default one region covering the middle of the glass.
    painter : callable
        Paints the glass in level-0 coordinates (default :class:`GradientPainter`); each region
        holds the painter's pixels at its place.
    levels : tuple of int
        Downsamples of the main images' pyramid directories, starting at 1.
    mpp : float
        µm per level-0 pixel: the XML's nanometre sizes and the directories' resolution tags.
    objective : int
        The XML's ``<objective>`` (OpenSlide's objective power).
    jpeg : bool
        JPEG tiles (as the scanner writes); False stores them uncompressed, for exact pixels.
    resolution_tags : bool
        Also record the pixel size in X/YResolution (the scanner does; OpenSlide's MPP comes
        from them, the XML only gives sizes).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    painter = painter if painter is not None else GradientPainter(width, height)
    big = levels[-1]
    regions = regions or [(big * (width // (4 * big)), big * (height // (4 * big)), big * (width // (2 * big)), big * (height // (2 * big)))]
    nm = round(mpp * 1000)
    if abs(nm - mpp * 1000) > 1e-6:
        raise ValueError("mpp must be a whole number of nanometres")
    for r in regions:
        if any(v % big for v in r):
            raise ValueError(f"region {r} must be a multiple of the largest downsample {big}")
    mh = max(1, round(macro_width * height / width))
    images, ifd = [], 1
    images.append({"name": "macro", "dims": [(0, macro_width, mh)], "nm": (0, 0, width * nm, height * nm), "objective": 1})
    for k, (rx, ry, rw, rh) in enumerate(regions):
        dims = [(ifd + i, rw // ds, rh // ds) for i, ds in enumerate(levels)]
        ifd += len(levels)
        images.append({"name": f"region {k}", "dims": dims, "nm": (rx * nm, ry * nm, rw * nm, rh * nm), "objective": objective})
    xml = _scn_xml((width * nm, height * nm), images, barcode="GUSA-TEST-0001")
    kw = dict(photometric="rgb", compression="jpeg" if jpeg else None, metadata=None, dtype=np.uint8, tile=(tile, tile))
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        macro = cv2.resize(painter(0, 0, macro_width * 4, mh * 4, width / (macro_width * 4)), (macro_width, mh),
                           interpolation=cv2.INTER_AREA)
        macro_tile = 16 * math.ceil(min(tile, max(macro_width, mh)) / 16)
        tw.write(macro, description=xml, photometric="rgb", compression="jpeg" if jpeg else None, metadata=None,
                 tile=(macro_tile, macro_tile), software="Leica SCN")
        for rx, ry, rw, rh in regions:
            for ds in levels:
                w, h = rw // ds, rh // ds
                res = {}
                if resolution_tags:
                    res = dict(resolution=(1e4 / (mpp * ds), 1e4 / (mpp * ds)), resolutionunit="CENTIMETER")
                tw.write(_tile_stream(painter, rx, ry, w, h, ds, tile, jpeg, quality), shape=(h, w, 3), **kw, **res)
    return path


# -------------------------------------------------------------------------------------- NDPI

_NDPI_FORMAT_FLAG, _NDPI_SOURCELENS, _NDPI_XOFFSET, _NDPI_YOFFSET = 65420, 65421, 65422, 65423
_NDPI_FOCAL_PLANE, _NDPI_MCU_STARTS, _NDPI_REFERENCE, _NDPI_PROPERTY_MAP = 65424, 65426, 65427, 65449
# TIFF field types: (code, struct format of one value)
_T_ASCII, _T_SHORT, _T_LONG, _T_RATIONAL, _T_SLONG, _T_FLOAT = 2, 3, 4, 5, 9, 11
_FMT = {_T_ASCII: "s", _T_SHORT: "H", _T_LONG: "I", _T_RATIONAL: "II", _T_SLONG: "i", _T_FLOAT: "f"}


def _restart_jpeg(rgb: np.ndarray, restart_mcus: int, quality: int) -> tuple[bytes, list[int]]:
    """A baseline 4:4:4 JPEG with a restart marker every ``restart_mcus`` MCUs, and where each interval starts.

    Returns the JPEG and, per restart interval, the offset (from the JPEG's first byte) of its
    first entropy-coded byte: right after the SOS segment for the first, after its RSTn marker
    for the others (NDPI's tag 65426).
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    if restart_mcus:
        params += [cv2.IMWRITE_JPEG_RST_INTERVAL, restart_mcus]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise OSError("JPEG encoding failed")
    data = buf.tobytes()
    pos = 2
    while True:  # walk the marker segments up to and including SOS
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        pos += 2 + length
        if marker == 0xDA:
            break
    starts = [pos]
    i = data.find(b"\xff", pos)
    while i != -1 and i + 1 < len(data):
        if 0xD0 <= data[i + 1] <= 0xD7:
            starts.append(i + 2)
        i = data.find(b"\xff", i + 2)
    return data, starts


def _tiff_entry(tag, typ, values) -> tuple[int, int, int, bytes]:
    if typ == _T_ASCII:
        raw = values.encode("latin-1") + b"\0"
        return tag, typ, len(raw), raw
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if typ == _T_RATIONAL:
        flat = [v for pair in values for v in pair]
        return tag, typ, len(values), struct.pack("<" + "I" * len(flat), *flat)
    return tag, typ, len(values), struct.pack("<" + _FMT[typ] * len(values), *values)


def _write_classic_tiff(path: Path, directories: list[tuple[bytes, list]]) -> None:
    """A little-endian classic TIFF of one-strip directories: ``(strip bytes, [(tag, type, values)])`` each.

    StripOffsets and StripByteCounts are added; values over 4 bytes go after their IFD.
    """
    out = bytearray(b"II*\0\0\0\0\0")
    prev_link = 4  # where the offset of the next IFD is written
    for strip, tags in directories:
        strip_at = len(out)
        out += strip
        if len(out) % 2:
            out += b"\0"
        entries = [_tiff_entry(t, ty, v) for t, ty, v in tags]
        entries += [_tiff_entry(273, _T_LONG, strip_at), _tiff_entry(279, _T_LONG, len(strip))]
        entries.sort(key=lambda e: e[0])
        ifd_at = len(out)
        struct.pack_into("<I", out, prev_link, ifd_at)
        extra_at = ifd_at + 2 + 12 * len(entries) + 4
        body, extra = bytearray(struct.pack("<H", len(entries))), bytearray()
        for tag, typ, count, raw in entries:
            if len(raw) <= 4:
                body += struct.pack("<HHI", tag, typ, count) + raw.ljust(4, b"\0")
            else:
                body += struct.pack("<HHII", tag, typ, count, extra_at + len(extra))
                extra += raw + (b"\0" if len(raw) % 2 else b"")
        prev_link = ifd_at + len(body)
        body += b"\0\0\0\0"
        out += body + extra
    Path(path).write_bytes(bytes(out))


def write_ndpi(
    path,
    width: int,
    height: int,
    *,
    painter=None,
    levels: tuple[int, ...] = (1, 4, 16),
    mpp: float = 0.4545,
    objective: float = 20.0,
    tile_width: int = 128,
    quality: int = 95,
    macro: bool = True,
) -> Path:
    """Write a Hamamatsu NDPI: one restart-marked JPEG per level, Hamamatsu's private tags, a macro.

    Parameters
    ----------
    path : path-like
    width, height : int
        Level-0 size; ``width`` a multiple of ``tile_width * levels[-1]``, ``height`` of ``8 * levels[-1]``.
    painter : callable
        Default :class:`GradientPainter`.
    levels : tuple of int
        Downsamples of the levels, starting at 1. Each directory's source lens (tag 65421) is
        ``objective / downsample``, as NDP.scan writes it.
    mpp : float
        µm per level-0 pixel, in the resolution tags (pixels per centimetre).
    tile_width : int
        Width of a restart interval (8 rows high): OpenSlide's tile. The smallest level, whose
        JPEG holds one interval, is written without restart markers, as the scanner does.
    macro : bool
        Add the macro photograph (source lens -1), which OpenSlide lists as an associated image.

    Returns
    -------
    path : Path
    """
    painter = painter if painter is not None else GradientPainter(width, height)
    if width % (tile_width * levels[-1]) or height % (8 * levels[-1]) or tile_width % 8:
        raise ValueError("width must be a multiple of tile_width * largest downsample, height of 8 * it")
    directories = []
    for k, ds in enumerate(levels):
        w, h = width // ds, height // ds
        restart = tile_width // 8 if w > tile_width or h > 8 else 0
        jpeg, starts = _restart_jpeg(painter(0, 0, w, h, float(ds)), restart, quality)
        tiles = (w // tile_width) * (h // 8) if restart else 1
        if len(starts) != tiles:
            raise AssertionError(f"expected {tiles} restart intervals, found {len(starts)}")
        directories.append((jpeg, _ndpi_tags(w, h, mpp * ds, objective / ds, starts if restart else None, k == 0)))
    if macro:
        mw, mh = 512, max(1, round(512 * height / width * 0.5))
        jpeg, _ = _restart_jpeg(cv2.resize(painter(0, 0, mw, mh, width / mw), (mw, mh)), 0, 90)
        directories.append((jpeg, _ndpi_tags(mw, mh, None, -1.0, None, False)))
    _write_classic_tiff(Path(path), directories)
    return Path(path)


def _ndpi_tags(w, h, mpp, lens, starts, first):
    tags = [
        (256, _T_LONG, w), (257, _T_LONG, h), (258, _T_SHORT, [8, 8, 8]), (259, _T_SHORT, 7),
        (262, _T_SHORT, 6), (271, _T_ASCII, "Hamamatsu"), (272, _T_ASCII, "C13220"), (277, _T_SHORT, 3),
        (278, _T_LONG, h), (305, _T_ASCII, "NDP.scan 3.2.4"),
        (_NDPI_FORMAT_FLAG, _T_LONG, 1), (_NDPI_SOURCELENS, _T_FLOAT, float(lens)),
        (_NDPI_XOFFSET, _T_SLONG, 1250000), (_NDPI_YOFFSET, _T_SLONG, -320000), (_NDPI_FOCAL_PLANE, _T_SLONG, 0),
        (_NDPI_REFERENCE, _T_ASCII, "GUSA-NDPI-TEST"),
    ]
    if mpp is not None:
        ppcm = round(1e4 / mpp * 1000)
        tags += [(282, _T_RATIONAL, [(ppcm, 1000)]), (283, _T_RATIONAL, [(ppcm, 1000)]), (296, _T_SHORT, 3)]
    if starts is not None:
        tags.append((_NDPI_MCU_STARTS, _T_LONG, starts))
    if first:
        tags.append((_NDPI_PROPERTY_MAP, _T_ASCII, "Objective.Lens.Magnificant=20\r\nNDP.S/N=GUSA0001\r\n"))
    return tags


# -------------------------------------------------------------------------------------- MRXS


def _index_dat(slide_id: str, zoom_records: list[list[tuple[int, int, int, int]]]) -> bytes:
    """MIRAX ``Index.dat``: version, slide id, the hierarchical root, an empty non-hierarchical root,
    then per zoom level a pointer to a one-page list of ``(image index, offset, length, file)`` records."""
    head = b"01.02" + slide_id.encode("ascii")
    hier_root = len(head)
    table_at = hier_root + 8  # after the two root pointers
    out = bytearray(head + struct.pack("<ii", table_at, 0))
    out += b"\0" * (4 * len(zoom_records))  # the per-level pointer table
    for z, records in enumerate(zoom_records):
        list_at = len(out)
        struct.pack_into("<i", out, table_at + 4 * z, list_at)
        page_at = list_at + 8
        out += struct.pack("<ii", 0, page_at)  # a 0, then the first data page
        out += struct.pack("<ii", len(records), 0)  # records on the page, no next page
        for rec in records:
            out += struct.pack("<iiii", *rec)
    return bytes(out)


def write_mrxs(
    path,
    images_x: int,
    images_y: int,
    *,
    image_size: tuple[int, int] = (256, 256),
    painter=None,
    zoom_levels: int = 3,
    mpp: float = 0.243,
    objective: int = 20,
    quality: int = 92,
    skip_blank=None,
) -> Path:
    """Write a MIRAX slide: ``path`` (``name.mrxs``) and the folder ``name/`` with its index and data.

    The slide is ``images_x`` by ``images_y`` camera images of ``image_size`` pixels laid edge to
    edge (no overlap, one image per camera position), so level 0 is
    ``images_x * image_size[0]`` by ``images_y * image_size[1]`` pixels. Zoom level ``z`` joins
    ``2**z x 2**z`` level-0 images into one image of the same pixel size (MIRAX's
    ``IMAGE_CONCAT_FACTOR = 1`` per level), so its downsample is ``2**z``.

    Parameters
    ----------
    path : path-like
        The ``.mrxs`` file; its folder is created beside it.
    images_x, images_y : int
        Camera images across and down; multiples of ``2**(zoom_levels - 1)``.
    painter : callable
        Default :class:`GradientPainter`.
    zoom_levels : int
    mpp : float
        µm per level-0 pixel (``MICROMETER_PER_PIXEL_X/Y`` of the first zoom level).
    objective : int
        ``OBJECTIVE_MAGNIFICATION``.
    skip_blank : callable, optional
        ``skip_blank(x0, y0, x1, y1) -> bool`` on a level-0 rectangle: leave that level-0 image
        out (not scanned). Coarser images are written where any of their level-0 images is,
        white (the fill colour) over the parts that were not scanned.

    Returns
    -------
    path : Path
        The ``.mrxs`` file.
    """
    path = Path(path)
    if path.suffix != ".mrxs":
        raise ValueError("a MIRAX slide's file ends in .mrxs")
    iw, ih = image_size
    top = 2 ** (zoom_levels - 1)
    if images_x % top or images_y % top:
        raise ValueError(f"images_x and images_y must be multiples of {top}")
    painter = painter if painter is not None else GradientPainter(images_x * iw, images_y * ih)
    folder = path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    slide_id = _uuid.uuid4().hex
    scanned = np.ones((images_y, images_x), bool)
    if skip_blank is not None:
        for y in range(images_y):
            for x in range(images_x):
                scanned[y, x] = not skip_blank(x * iw, y * ih, (x + 1) * iw, (y + 1) * ih)
    data = bytearray(b"GUSA generated MIRAX data file\0")
    zoom_records = []
    for z in range(zoom_levels):
        c = 2**z  # level-0 images per image, along each side
        records = []
        for y in range(0, images_y, c):
            for x in range(0, images_x, c):
                if not scanned[y : y + c, x : x + c].any():
                    continue
                rgb = np.array(painter(x * iw, y * ih, iw, ih, float(c)), np.uint8)
                for yy, xx in zip(*np.nonzero(~scanned[y : y + c, x : x + c])):  # fill what was not scanned
                    rgb[yy * ih // c : (yy + 1) * ih // c, xx * iw // c : (xx + 1) * iw // c] = 255
                jpeg, _ = _restart_jpeg(rgb, 0, quality)
                records.append((y * images_x + x, len(data), len(jpeg), 0))
                data += jpeg
        zoom_records.append(records)
    (folder / "Data0000.dat").write_bytes(bytes(data))
    (folder / "Index.dat").write_bytes(_index_dat(slide_id, zoom_records))
    lines = [
        "[GENERAL]", "SLIDE_VERSION=01.03", f"SLIDE_ID={slide_id}", "SLIDE_NAME=generated",
        f"IMAGENUMBER_X={images_x}", f"IMAGENUMBER_Y={images_y}", f"OBJECTIVE_MAGNIFICATION={objective}",
        "CameraImageDivisionsPerSide=1", "",
        "[HIERARCHICAL]", "HIER_COUNT=1", "NONHIER_COUNT=0", "INDEXFILE=Index.dat",
        "HIER_0_NAME=Slide zoom level", f"HIER_0_COUNT={zoom_levels}",
    ]
    lines += [f"HIER_0_VAL_{z}=ZoomLevel_{z}" for z in range(zoom_levels)]
    lines += [f"HIER_0_VAL_{z}_SECTION=LAYER_0_LEVEL_{z}_SECTION" for z in range(zoom_levels)]
    lines += ["", "[DATAFILE]", "FILE_COUNT=1", "FILE_0=Data0000.dat", ""]
    for z in range(zoom_levels):
        lines += [
            f"[LAYER_0_LEVEL_{z}_SECTION]", f"IMAGE_CONCAT_FACTOR={0 if z == 0 else 1}", "OVERLAP_X=0", "OVERLAP_Y=0",
            f"MICROMETER_PER_PIXEL_X={mpp * 2**z:g}", f"MICROMETER_PER_PIXEL_Y={mpp * 2**z:g}",
            "IMAGE_FILL_COLOR_BGR=16777215", f"DIGITIZER_WIDTH={iw}", f"DIGITIZER_HEIGHT={ih}", "IMAGE_FORMAT=JPEG", "",
        ]
    (folder / "Slidedat.ini").write_text("\r\n".join(lines), encoding="utf-8")
    # the .mrxs itself carries nothing OpenSlide reads; 3DHISTECH's viewer keeps a small header there
    path.write_bytes(b"MIRAX slide (generated for tests)\r\n")
    return path
