"""Vendor slides (Leica SCN, Hamamatsu NDPI, MIRAX MRXS) generated as the scanners lay them out.

OpenSlide must open each with its vendor driver (``openslide.vendor``), and :func:`open_slide`
must report the levels, pixel size and objective the vendor metadata holds and read the pixels
the fixtures painted (:func:`vendor_fixtures.painted` is the oracle: the painter evaluated at
each level's pixel centres).
"""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from gusa_core.errors import ImageReadError
from gusa_core.slides import is_slide_path, mrxs_owner, open_slide

from vendor_fixtures import GradientPainter, painted, write_mrxs, write_ndpi, write_scn

SCN_W, SCN_H = 2048, 1536
SCN_REGIONS = [(256, 256, 768, 512), (1280, 768, 512, 512)]  # two scanned regions on the glass
NDPI_W, NDPI_H = 2048, 1536
MRXS_IMAGES = (8, 4)  # camera images of 256 x 256 -> 2048 x 1024 at level 0


def _union(regions):
    x0 = min(r[0] for r in regions)
    y0 = min(r[1] for r in regions)
    return (x0, y0, max(r[0] + r[2] for r in regions) - x0, max(r[1] + r[3] for r in regions) - y0)


def _diff(a, b) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.fixture(scope="module")
def scn_raw(tmp_path_factory):
    """Uncompressed tiles: every pixel is the painter's."""
    return write_scn(tmp_path_factory.mktemp("scn") / "raw.scn", SCN_W, SCN_H, regions=SCN_REGIONS, jpeg=False)


@pytest.fixture(scope="module")
def ndpi(tmp_path_factory):
    return write_ndpi(tmp_path_factory.mktemp("ndpi") / "slide.ndpi", NDPI_W, NDPI_H)


def _mrxs_blank(x0, y0, x1, y1):
    return x0 >= 1536 and y0 >= 512  # the bottom-right 2 x 2 camera images were never scanned


@pytest.fixture(scope="module")
def mrxs(tmp_path_factory):
    return write_mrxs(tmp_path_factory.mktemp("mrxs") / "slide.mrxs", *MRXS_IMAGES, skip_blank=_mrxs_blank)


# ----------------------------------------------------------------------------------------- SCN


def test_scn_is_read_by_openslides_leica_driver(scn_raw):
    osr = openslide.OpenSlide(str(scn_raw))
    assert osr.properties["openslide.vendor"] == "leica"
    assert "macro" in osr.associated_images
    with open_slide(scn_raw) as slide:
        assert (slide.backend, slide.vendor) == ("openslide", "leica")
        # OpenSlide's level 0 is the whole glass (Leica's collection); the regions sit on it
        assert slide.level_dimensions == [(SCN_W, SCN_H), (SCN_W // 4, SCN_H // 4), (SCN_W // 16, SCN_H // 16)]
        assert slide.level_downsamples == [1.0, 4.0, 16.0]
        assert slide.mpp == pytest.approx((0.5, 0.5)) and slide.objective_power == 20.0
        assert slide.bounds == _union(SCN_REGIONS)


@pytest.mark.parametrize(
    "level, box",
    [
        (0, (300, 300, 200, 120)),  # inside region 0
        (0, (1200, 700, 160, 120)),  # straddles region 1's corner: glass outside is white
        (1, (60, 60, 200, 120)),
        (2, (10, 10, 100, 80)),
    ],
)
def test_scn_pixels_are_the_painted_ones(scn_raw, level, box):
    painter = GradientPainter(SCN_W, SCN_H)
    with open_slide(scn_raw) as slide:
        got = slide.read_region(level, box)
        want = painted(painter, box, slide.level_downsamples[level], SCN_REGIONS)
    np.testing.assert_array_equal(got, want)


def test_scn_field_and_thumbnail(scn_raw):
    painter = GradientPainter(SCN_W, SCN_H)
    with open_slide(scn_raw) as slide:
        field = slide.read_field((320, 320, 512, 384), (128, 96))  # read from the downsample-4 level
        np.testing.assert_array_equal(field, painted(painter, (80, 80, 128, 96), 4.0, SCN_REGIONS))
        thumb = slide.get_thumbnail(128)
    assert thumb.shape == (96, 128, 3)
    assert (thumb[:8] == 255).all()  # the glass above the regions was not scanned


def test_scn_jpeg_tiles_decode_close_to_the_painter(tmp_path):
    path = write_scn(tmp_path / "jpeg.scn", SCN_W, SCN_H, regions=SCN_REGIONS[:1], quality=95)
    painter = GradientPainter(SCN_W, SCN_H)
    with open_slide(path) as slide:
        box = (300, 300, 256, 160)
        got = slide.read_region(0, box)
        assert _diff(got, painted(painter, box, 1.0, SCN_REGIONS[:1])).mean() < 1.5
        shifted = painted(painter, (301, 300, 256, 160), 1.0, SCN_REGIONS[:1])
        assert _diff(got, shifted).mean() > 2 * _diff(got, painted(painter, box, 1.0, SCN_REGIONS[:1])).mean()


def test_scn_without_resolution_tags_takes_the_pixel_size_from_its_xml(tmp_path):
    path = write_scn(tmp_path / "nores.scn", SCN_W, SCN_H, regions=SCN_REGIONS, jpeg=False, mpp=0.25,
                     resolution_tags=False)
    assert "openslide.mpp-x" not in openslide.OpenSlide(str(path)).properties
    with open_slide(path) as slide:
        assert slide.vendor == "leica" and slide.mpp == pytest.approx((0.25, 0.25))


# ---------------------------------------------------------------------------------------- NDPI


def test_ndpi_is_read_by_openslides_hamamatsu_driver(ndpi):
    osr = openslide.OpenSlide(str(ndpi))
    assert osr.properties["openslide.vendor"] == "hamamatsu"
    assert osr.properties["hamamatsu.SourceLens"] == "20"
    assert "macro" in osr.associated_images
    with open_slide(ndpi) as slide:
        assert (slide.backend, slide.vendor) == ("openslide", "hamamatsu")
        # three JPEG directories (1, 4, 16); OpenSlide adds the 1/2, 1/4, 1/8 scale-on-decode levels
        downs = [1, 2, 4, 8, 16, 32, 64, 128]
        assert slide.level_downsamples == [float(d) for d in downs]
        assert slide.level_dimensions == [(NDPI_W // d, NDPI_H // d) for d in downs]
        assert slide.mpp == pytest.approx((0.4545, 0.4545), rel=1e-6) and slide.objective_power == 20.0
        assert slide.bounds == (0, 0, NDPI_W, NDPI_H)


@pytest.mark.parametrize("level, box", [(0, (1000, 700, 300, 200)), (0, (1900, 1400, 148, 136)), (2, (250, 190, 100, 80)),
                                        (4, (60, 40, 50, 40))])
def test_ndpi_pixels_are_the_painted_ones(ndpi, level, box):
    painter = GradientPainter(NDPI_W, NDPI_H)
    with open_slide(ndpi) as slide:
        ds = slide.level_downsamples[level]
        got = slide.read_region(level, box)
    err = _diff(got, painted(painter, box, ds)).mean()
    assert err < 2.0
    if level == 0:  # one pixel off its place is several times further from the painter
        assert _diff(got, painted(painter, (box[0] + 1,) + box[1:], ds)).mean() > 2 * err


def test_ndpi_field_is_read_from_the_nearest_level(ndpi):
    painter = GradientPainter(NDPI_W, NDPI_H)
    with open_slide(ndpi) as slide:
        field = slide.read_field((512, 384, 1024, 768), (256, 192))
    assert _diff(field, painted(painter, (128, 96, 256, 192), 4.0)).mean() < 2.5


# ---------------------------------------------------------------------------------------- MRXS


def test_mrxs_is_read_by_openslides_mirax_driver(mrxs):
    osr = openslide.OpenSlide(str(mrxs))
    assert osr.properties["openslide.vendor"] == "mirax"
    with open_slide(mrxs) as slide:
        assert (slide.backend, slide.vendor) == ("openslide", "mirax")
        assert slide.level_dimensions == [(2048, 1024), (1024, 512), (512, 256)]
        assert slide.level_downsamples == [1.0, 2.0, 4.0]
        assert slide.mpp == pytest.approx((0.243, 0.243)) and slide.objective_power == 20.0


@pytest.mark.parametrize("level, box", [(0, (1000, 300, 300, 200)), (0, (1400, 400, 300, 300)), (1, (250, 190, 100, 80)),
                                        (2, (300, 60, 150, 150))])
def test_mrxs_pixels_are_the_painted_ones(mrxs, level, box):
    painter = GradientPainter(2048, 1024)
    scanned = [(0, 0, 2048, 512), (0, 512, 1536, 512)]
    with open_slide(mrxs) as slide:
        ds = slide.level_downsamples[level]
        got = slide.read_region(level, box)
    want = painted(painter, box, ds, scanned)
    assert _diff(got, want).mean() < 2.5
    black = painted(lambda x, y, w, h, d: np.zeros((h, w, 3), np.uint8), box, ds, scanned)
    assert (got[black.all(axis=2)] == 255).all()  # never scanned: white


def test_mrxs_file_is_only_a_name_for_its_folder(mrxs, tmp_path):
    folder = mrxs.with_suffix("")
    assert is_slide_path(mrxs) and not is_slide_path(folder) and mrxs_owner(folder) == mrxs
    with pytest.raises(ImageReadError, match="data folder of the MIRAX slide slide.mrxs"):
        open_slide(folder)
    # OpenSlide reads nothing from the .mrxs itself: an empty one still opens
    empty = write_mrxs(tmp_path / "empty.mrxs", 2, 2, zoom_levels=2)
    empty.write_bytes(b"")
    with open_slide(empty) as slide:
        assert slide.vendor == "mirax" and slide.dimensions == (512, 512)
    lonely = tmp_path / "lonely.mrxs"
    lonely.write_bytes(b"MIRAX")
    assert not is_slide_path(lonely)
    with pytest.raises(ImageReadError, match=r"lonely\.mrxs.*folder lonely/ holding Slidedat\.ini"):
        open_slide(lonely)


def test_mrxs_unscanned_margins_are_its_bounds_and_qupaths_crop(tmp_path):
    # the first column and row of camera images were not scanned: OpenSlide's bounds start after them
    path = write_mrxs(tmp_path / "margin.mrxs", 4, 4, zoom_levels=2, skip_blank=lambda x0, y0, x1, y1: x0 < 256 or y0 < 256)
    with open_slide(path) as slide:
        assert slide.dimensions == (1024, 1024)
        assert slide.bounds == (256, 256, 768, 768) and slide.qupath_origin == (256, 256)
        assert (slide.read_region(0, (0, 0, 256, 1024)) == 255).all()
    with open_slide(write_scn(tmp_path / "s.scn", 1024, 768, regions=[(0, 0, 1024, 384)], levels=(1, 4), jpeg=False)) as s:
        assert s.bounds == (0, 0, 1024, 384) and s.qupath_origin == (0, 0)  # QuPath crops only when both sides differ
