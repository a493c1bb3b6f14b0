"""Whole-slide reading (OpenSlide, tifffile, flat images), tissue detection and field geometry."""

from __future__ import annotations

import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from gusa_core.errors import ImageReadError
from gusa_core.imageio import read_image
from gusa_core.slides import (
    detect_tissue,
    field_grid,
    is_pyramidal,
    is_slide_path,
    open_slide,
    tissue_fraction,
)

from slide_fixtures import BACKGROUND, TissuePainter, TwoClassPainter, write_pyramid_tiff

_ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("GUSA_SHARED_DATA", _ROOT.parent / "shared" / "data"))
W, H = 3000, 2000


@pytest.fixture(scope="module")
def svs() -> Path:
    path = SHARED / "cmu_small_region.svs"
    if not path.is_file():
        pytest.skip(f"real slide {path} not found (set GUSA_SHARED_DATA to the folder holding it)")
    return path


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory) -> Path:
    """3000x2000 tissue slide, levels 1/2/4, reduced levels as NewSubfileType-1 pages."""
    return write_pyramid_tiff(tmp_path_factory.mktemp("slides") / "p.tif", W, H, levels=[1, 2, 4])


@pytest.fixture(scope="module")
def subifd_pyramid(tmp_path_factory) -> Path:
    return write_pyramid_tiff(tmp_path_factory.mktemp("slides") / "s.tif", W, H, levels=[1, 2, 4], layout="subifds")


def _page_arrays(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        return [p.asarray() for p in tif.pages]


# ---------------------------------------------------------------------------- real slide


def test_real_svs_through_openslide(svs):
    with open_slide(svs) as slide:
        assert (slide.backend, slide.vendor) == ("openslide", "aperio")
        assert slide.level_count == 1 and slide.dimensions == (2220, 2967)
        assert slide.mpp == pytest.approx((0.499, 0.499)) and slide.objective_power == 20.0
        flat = read_image(svs)  # tifffile's decode of level 0: an independent JPEG decoder
        for x, y, w, h in [(0, 0, 500, 400), (1000, 1500, 640, 480), (1961, 2713, 259, 254)]:
            # tiles decode identically with OpenSlide's libjpeg and imagecodecs (measured: 0 levels apart)
            np.testing.assert_array_equal(slide.read_region(0, (x, y, w, h)), flat[y : y + h, x : x + w])
        past = slide.read_region(0, (2100, 2900, 200, 100))
        np.testing.assert_array_equal(past[:67, :120], flat[2900:, 2100:])
        assert (past[67:] == 255).all() and (past[:, 120:] == 255).all()


def test_real_svs_tifffile_backend_agrees(svs):
    with open_slide(svs) as osl, open_slide(svs, backend="tifffile") as tff:
        assert tff.backend == "tifffile" and tff.mpp == pytest.approx((0.499, 0.499)) and tff.objective_power == 20.0
        box = (700, 900, 512, 384)
        np.testing.assert_array_equal(osl.read_region(0, box), tff.read_region(0, box))
    assert is_slide_path(svs) and not is_pyramidal(svs)


# ---------------------------------------------------------------------------- generated pyramids


def test_generated_pyramid_levels_mpp_and_pixels(pyramid):
    pages = _page_arrays(pyramid)
    with open_slide(pyramid) as slide:
        assert slide.backend == "tifffile"  # generic TIFFs: faster and exact (see open_slide)
        assert slide.level_dimensions == [(3000, 2000), (1500, 1000), (750, 500)]
        assert slide.level_downsamples == [1.0, 2.0, 4.0]
        assert slide.mpp == pytest.approx((0.25, 0.25)) and slide.objective_power is None
        for level, (x, y, w, h) in enumerate([(1017, 333, 300, 200), (250, 130, 400, 300), (610, 420, 200, 100)]):
            region = slide.read_region(level, (x, y, w, h))  # box in the level's own pixels
            assert region.shape == (h, w, 3) and region.dtype == np.uint8
            inside = pages[level][y : y + h, x : x + w]
            np.testing.assert_array_equal(region[: inside.shape[0], : inside.shape[1]], inside)
            assert (region[inside.shape[0] :] == 255).all() and (region[:, inside.shape[1] :] == 255).all()
    # against the painter itself: only JPEG loss
    painted = TissuePainter(W, H)(1000, 600, 512, 512, 1.0)
    with open_slide(pyramid) as slide:
        diff = np.abs(slide.read_region(0, (1000, 600, 512, 512)).astype(int) - painted)
    assert diff.mean() < 3.0


def test_openslide_resamples_levels_with_fractional_downsamples(tmp_path):
    """OpenSlide addresses levels through a level-0 location divided by one mean downsample: when the
    level sizes are floor-divided (3001 / 750 = 4.0013, 2003 / 500 = 4.006) a level box lands a
    fraction of a pixel off and is interpolated; tifffile reads the level's own pixels exactly."""
    path = write_pyramid_tiff(tmp_path / "odd.tif", 3001, 2003, levels=[1, 4])
    page1 = _page_arrays(path)[1]
    with open_slide(path, backend="openslide") as osl, open_slide(path, backend="tifffile") as tff:
        assert osl.level_downsamples == pytest.approx([1.0, (3001 / 750 + 2003 / 500) / 2])
        box = (123, 77, 150, 100)
        np.testing.assert_array_equal(tff.read_region(1, box), page1[77:177, 123:273])
        diff = np.abs(osl.read_region(1, box).astype(int) - page1[77:177, 123:273])
        assert diff.mean() < 2.0  # measured 0.76: sub-pixel interpolation, no whole-pixel shift
        np.testing.assert_array_equal(osl.read_region(1, (0, 0, 100, 100)), page1[:100, :100])


def test_aperio_description_gives_objective_power(tmp_path):
    path = write_pyramid_tiff(tmp_path / "a.tif", 1200, 800, levels=[1, 4], mpp=0.5, objective_power=20)
    with open_slide(path) as slide:
        assert (slide.backend, slide.vendor) == ("openslide", "aperio")
        assert slide.mpp == pytest.approx((0.5, 0.5)) and slide.objective_power == 20.0
        assert slide.level_dimensions == [(1200, 800), (300, 200)]
    with open_slide(path, backend="tifffile") as slide:
        assert slide.level_count == 2 and slide.objective_power == 20.0 and slide.mpp == (0.5, 0.5)


def test_openslide_needs_the_reduced_flag(tmp_path):
    """Successive pages without NewSubfileType 1 are one level to OpenSlide; tifffile still finds the pyramid."""
    base = TissuePainter(1024, 768)(0, 0, 1024, 768, 1.0)
    path = tmp_path / "noflag.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(256, 256), compression="jpeg", photometric="rgb", metadata=None)
        tw.write(cv2.resize(base, (512, 384), interpolation=cv2.INTER_AREA), tile=(256, 256),
                 compression="jpeg", photometric="rgb", metadata=None)
    with open_slide(path, backend="openslide") as osl:
        assert osl.level_count == 1
    with open_slide(path) as slide:
        assert slide.backend == "tifffile" and slide.level_dimensions == [(1024, 768), (512, 384)]


def test_subifd_pyramid_falls_back_to_tifffile(pyramid, subifd_pyramid):
    with open_slide(subifd_pyramid, backend="openslide") as osl:
        assert osl.level_count == 1  # OpenSlide ignores SubIFDs
    with open_slide(subifd_pyramid) as slide, open_slide(pyramid) as ref:
        assert slide.backend == "tifffile"
        assert slide.level_dimensions == ref.level_dimensions and slide.level_downsamples == [1.0, 2.0, 4.0]
        assert slide.mpp == pytest.approx((0.25, 0.25))
        for level in range(3):
            box = (37, 91, 333, 222)
            np.testing.assert_array_equal(slide.read_region(level, box), ref.read_region(level, box))
    assert is_pyramidal(subifd_pyramid) and is_slide_path(subifd_pyramid)


def test_ome_tiff_pyramid(tmp_path):
    base = np.ascontiguousarray(TissuePainter(800, 600)(0, 0, 800, 600, 1.0))
    path = tmp_path / "x.ome.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, subifds=1, tile=(128, 128), photometric="rgb",
                 metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
        tw.write(base[::2, ::2], subfiletype=1, tile=(128, 128), photometric="rgb")
    with open_slide(path) as slide:
        assert slide.backend == "tifffile" and slide.level_dimensions == [(800, 600), (400, 300)]
        assert slide.mpp == pytest.approx((0.5, 0.5))
        np.testing.assert_array_equal(slide.read_region(0, (100, 50, 300, 200)), base[50:250, 100:400])
        np.testing.assert_array_equal(slide.read_region(1, (10, 20, 100, 80)), base[::2, ::2][20:100, 10:110])


def test_plain_tiff_and_png_are_one_level_slides(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (301, 407, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "plain.tif", rgb, photometric="rgb", rowsperstrip=16)
    grey16 = rng.integers(0, 4096, (120, 90), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "grey.tif", grey16, bitspersample=12)
    Image.fromarray(rgb).save(tmp_path / "flat.png")
    with open_slide(tmp_path / "plain.tif") as slide:
        assert (slide.backend, slide.level_count, slide.dimensions) == ("tifffile", 1, (407, 301))
        np.testing.assert_array_equal(slide.read_region(0, (33, 17, 200, 150)), rgb[17:167, 33:233])
        out = slide.read_region(0, (-5, 290, 20, 20))
        np.testing.assert_array_equal(out[:11, 5:], rgb[290:, :15])
        assert (out[:, :5] == 255).all() and (out[11:] == 255).all()
    with open_slide(tmp_path / "grey.tif") as slide:
        expected = (grey16.astype(np.int64) * 255 // 4095).astype(np.uint8)
        np.testing.assert_array_equal(slide.read_region(0, (0, 0, 90, 120))[..., 1], expected)
    with open_slide(tmp_path / "flat.png") as slide:
        assert (slide.backend, slide.vendor, slide.mpp) == ("image", "image", None)
        np.testing.assert_array_equal(slide.read_region(0, (400, 300, 10, 10))[:1, :7], rgb[300:, 400:])
        np.testing.assert_array_equal(slide.get_thumbnail(1000), rgb)  # never upscaled
    assert not is_slide_path(tmp_path / "plain.tif") and not is_slide_path(tmp_path / "flat.png")


def test_read_field_uses_the_nearest_level(pyramid):
    with open_slide(pyramid) as slide:
        aligned = slide.read_field((400, 200, 2048, 1536), (512, 384))
        np.testing.assert_array_equal(aligned, slide.read_region(2, (100, 50, 512, 384)))
        half = slide.read_field((400, 200, 1024, 768), (512, 384))
        np.testing.assert_array_equal(half, slide.read_region(1, (200, 100, 512, 384)))
        # off the level grid: within a pixel of area-reducing level 0
        odd = slide.read_field((401, 203, 2048, 1536), (512, 384))
        ref = cv2.resize(slide.read_region(0, (401, 203, 2048, 1536)), (512, 384), interpolation=cv2.INTER_AREA)
        assert odd.shape == (384, 512, 3)
        assert np.abs(odd.astype(int) - ref).mean() < 6.0
        shifted = np.abs(np.roll(odd, 3, axis=1).astype(int) - ref).mean()
        assert np.abs(odd.astype(int) - ref).mean() < shifted


def test_levels_for_downsample_and_mpp(pyramid, tmp_path):
    with open_slide(pyramid) as slide:
        assert [slide.best_level_for_downsample(d) for d in (0.5, 1, 1.9, 2, 3.9, 4, 100)] == [0, 0, 0, 1, 1, 2, 2]
        assert [slide.level_for_mpp(m) for m in (0.1, 0.25, 0.5, 0.9, 1.0, 5.0)] == [0, 0, 1, 1, 2, 2]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "f.png")
    with open_slide(tmp_path / "f.png") as flat, pytest.raises(ImageReadError, match="pixel size"):
        flat.level_for_mpp(0.5)


def test_thumbnail_reads_a_small_level_and_fits(pyramid):
    with open_slide(pyramid) as slide:
        thumb = slide.get_thumbnail(300)
        assert thumb.shape == (200, 300, 3)
        ref = cv2.resize(slide.read_region(2, (0, 0, 750, 500)), (300, 200), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(thumb, ref)
        assert slide.get_thumbnail((1000, 100)).shape == (100, 150, 3)
    with open_slide(pyramid, max_pixels=100_000) as capped:  # read band by band under the cap
        banded = capped.get_thumbnail(300)
    assert np.abs(banded.astype(int) - thumb).mean() < 1.0


def test_pixel_cap_and_closed_slide(pyramid):
    slide = open_slide(pyramid, max_pixels=1000 * 1000)
    slide.read_region(0, (0, 0, 1000, 1000))
    with pytest.raises(ImageReadError, match="read limit") as err:
        slide.read_region(0, (0, 0, 1001, 1000))
    assert str(pyramid) in str(err.value)
    with pytest.raises(ValueError, match="level 3"):
        slide.read_region(3, (0, 0, 10, 10))
    slide.close()
    with pytest.raises(ImageReadError, match="closed"):
        slide.read_region(0, (0, 0, 10, 10))


@pytest.mark.parametrize("backend", ["openslide", "tifffile"])
def test_concurrent_reads_match_serial(pyramid, backend):
    rng = np.random.default_rng(7)
    jobs = []
    for _ in range(48):
        level = int(rng.integers(0, 3))
        lw, lh = (W >> level, H >> level) if level < 2 else (750, 500)
        jobs.append((level, (int(rng.integers(-50, lw)), int(rng.integers(-50, lh)), 256, 192)))
    with open_slide(pyramid, backend=backend) as slide:
        serial = [slide.read_region(level, box) for level, box in jobs]
        with ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda job: slide.read_region(*job), jobs))
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)


def test_bad_files_name_the_file(tmp_path, pyramid):
    cases = {
        "missing.svs": None,
        "empty.tif": b"",
        "junk.svs": b"this is not a slide at all" * 40,
        "header.tif": pyramid.read_bytes()[:64],
        "truncated.tif": pyramid.read_bytes()[: pyramid.stat().st_size // 2],
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ImageReadError) as err:
            with open_slide(path) as slide:
                slide.read_region(0, (0, 0, 3000, 2000))
        assert str(path) in str(err.value), name
    assert not is_pyramidal(tmp_path / "junk.svs")
    assert is_slide_path(tmp_path / "junk.svs")  # by suffix; opening it still fails clearly


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:  # Linux: writing 5 resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def test_huge_pyramid_is_written_and_read_in_small_memory(tmp_path):
    """A 40,000 x 30,000 slide (1.2 gigapixels) is written tile by tile and read without a level in memory."""
    painter = TissuePainter(40_000, 30_000, n_blobs=4, size=0.03)
    exact_peak = _reset_peak_rss()
    rss0 = _status_kib("VmRSS") if exact_peak else None
    if not exact_peak:
        tracemalloc.start()
    path = write_pyramid_tiff(tmp_path / "huge.tif", 40_000, 30_000, painter=painter)
    with open_slide(path) as slide:
        assert slide.level_dimensions == [(40_000, 30_000), (10_000, 7_500), (2_500, 1_875), (625, 468)]
        thumb = slide.get_thumbnail(512)
        cx, cy, _, _ = painter.blobs[0]
        x0, y0 = cx - 1024, cy - 768
        field = slide.read_field((x0, y0, 2048, 1536), (512, 384))
    if exact_peak:
        peak = (_status_kib("VmHWM") - rss0) * 1024  # process peak, C allocations (OpenSlide, codecs) included
    else:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(f"peak memory growth {peak / 2**20:.0f} MiB")
    assert peak < 300 * 2**20, f"peak memory grew by {peak / 2**20:.0f} MiB"
    assert thumb.shape == (384, 512, 3)
    assert path.stat().st_size < 200 * 2**20
    # the field is read from the downsample-4 level and shows the painted tissue where it was painted
    ys = y0 + (np.arange(384) + 0.5)[:, None] * 4
    xs = x0 + (np.arange(512) + 0.5)[None, :] * 4
    painted = painter.inside(xs, ys)
    seen = np.abs(field.astype(int) - BACKGROUND).sum(axis=2) > 30
    assert painted.mean() > 0.3 and (seen == painted).mean() > 0.97


# ---------------------------------------------------------------------------- tissue and fields


def test_detect_tissue_finds_what_was_painted(pyramid):
    with open_slide(pyramid) as slide:
        thumb = slide.get_thumbnail(600)
    mask = detect_tissue(thumb)
    truth = TissuePainter(W, H).truth_mask(mask.shape)
    assert mask.dtype == bool and mask.shape == thumb.shape[:2]
    assert abs(mask.mean() - truth.mean()) < 0.01
    assert (mask & truth).sum() / (mask | truth).sum() > 0.95


def test_detect_tissue_edge_cases():
    glass = np.full((100, 150, 3), BACKGROUND, np.uint8)
    assert not detect_tissue(glass).any()
    noisy = np.clip(glass.astype(int) + np.random.default_rng(0).integers(-4, 5, glass.shape), 0, 255).astype(np.uint8)
    assert not detect_tissue(noisy).any()
    full = TwoClassPainter(1500, 1000, margin=0.0)(0, 0, 150, 100, 10.0)  # two stains, no glass
    assert detect_tissue(full).mean() > 0.99
    spots = glass.copy()
    cv2.circle(spots, (75, 50), 30, (200, 100, 170), -1)
    cv2.circle(spots, (75, 50), 3, BACKGROUND, -1)  # a small hole: filled
    spots[5:7, 5:7] = (120, 60, 150)  # a speck: removed
    mask = detect_tissue(spots)
    disk = np.zeros(mask.shape, np.uint8)
    cv2.circle(disk, (75, 50), 30, 1, -1)
    assert mask[50, 75] and not mask[5:7, 5:7].any()
    assert (mask == disk.astype(bool)).mean() > 0.99
    with pytest.raises(ValueError):
        detect_tissue(np.zeros((10, 10), np.uint8))


def test_two_class_painter_halves_differ():
    p = TwoClassPainter(2000, 1000)
    left, right = p(200, 200, 300, 300, 1.0), p(1500, 200, 300, 300, 1.0)
    assert np.abs(left.reshape(-1, 3).mean(0) - right.reshape(-1, 3).mean(0)).max() > 30
    assert p.label(np.array([999, 1000]), np.array([5, 5])).tolist() == [0, 1]


def test_field_grid_geometry():
    boxes = field_grid((1000, 600), (400, 300), overlap=0.5)
    assert sorted({b[0] for b in boxes}) == [0, 200, 400, 600]
    assert sorted({b[1] for b in boxes}) == [0, 150, 300]
    assert len(boxes) == 12 and all(b[2:] == (400, 300) for b in boxes)
    covered = np.zeros((600, 1000), bool)
    for x, y, w, h in boxes:
        assert 0 <= x and x + w <= 1000 and 0 <= y and y + h <= 600
        covered[y : y + h, x : x + w] = True
    assert covered.all()
    # a stride that does not divide: the last field ends at the edge
    assert sorted({b[0] for b in field_grid((1000, 300), (300, 300), overlap=0.0)}) == [0, 300, 600, 700]
    assert field_grid((100, 80), (400, 300)) == [(0, 0, 400, 300)]
    with pytest.raises(ValueError):
        field_grid((100, 100), (10, 10), overlap=1.0)


def test_tissue_fraction_is_area_weighted():
    mask = np.zeros((10, 20), bool)
    mask[:, :10] = True  # left half; each mask pixel covers 8x8 level-0 pixels
    assert tissue_fraction(mask, (0, 0, 80, 80), 8) == 1.0
    assert tissue_fraction(mask, (40, 0, 80, 80), 8) == pytest.approx(0.5)
    assert tissue_fraction(mask, (76, 0, 8, 8), 8) == pytest.approx(0.5)  # half a pixel each side
    assert tissue_fraction(mask, (100, 0, 40, 40), 8) == 0.0
    assert tissue_fraction(mask, (-80, 0, 160, 80), (8, 8)) == pytest.approx(0.5)  # outside counts as glass
    assert tissue_fraction(mask, (0, 0, 160, 80), (8.0, 8.0)) == pytest.approx(0.5)
