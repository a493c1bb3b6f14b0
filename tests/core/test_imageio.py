"""gusa_core.imageio: reading real and synthetic images, masks, listing, the cache."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from gusa_core.errors import GusaError, ImageReadError, MaskError
from gusa_core.imageio import (
    IMAGE_SUFFIXES,
    DownsampleCache,
    image_size,
    list_images,
    read_image,
    read_mask,
    resize_image,
    write_mask,
)


def _rgb(h=30, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ real H&E files


def test_read_real_bach_size_tif(he_tif):
    img = read_image(he_tif)
    assert img.shape == (1536, 2048, 3) and img.dtype == np.uint8
    assert img.flags.c_contiguous
    # Same pixels as an independent decoder (PIL).
    with Image.open(he_tif) as im:
        np.testing.assert_array_equal(img, np.asarray(im.convert("RGB")))
    assert image_size(he_tif) == (2048, 1536)
    # It is H&E tissue: pinkish-purple, red and blue above green on average.
    r, g, b = img.reshape(-1, 3).mean(0)
    assert r > g and b > g


def test_read_real_svs_level0(he_svs):
    img = read_image(he_svs)
    assert img.shape == (2967, 2220, 3) and img.dtype == np.uint8
    assert image_size(he_svs) == (2220, 2967)
    # The crop he_bach_size.tif was cut from level 0 (rows 900-2435, cols 100-2147) and
    # saved losslessly, so level 0 of the SVS must reproduce it exactly.
    tif = he_svs.with_name("he_bach_size.tif")
    if tif.is_file():
        np.testing.assert_array_equal(img[900:2436, 100:2148], read_image(tif))


def test_truncated_real_tif_raises_naming_file(he_tif, tmp_path):
    data = he_tif.read_bytes()
    cut = tmp_path / "cut_in_half.tif"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut_in_half.tif") as info:
        read_image(cut)
    assert "truncated" in info.value.reason


def test_truncated_svs_raises(he_svs, tmp_path):
    data = he_svs.read_bytes()
    cut = tmp_path / "cut.svs"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="cut.svs"):
        read_image(cut)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_round_trip(tmp_path, suffix):
    img = _rgb()
    path = tmp_path / f"img{suffix.upper()}"
    Image.fromarray(img).save(path)
    out = read_image(path)
    np.testing.assert_array_equal(out, img)
    assert image_size(path) == (40, 30)


def test_jpeg_round_trip(tmp_path):
    img = np.zeros((64, 80, 3), np.uint8)
    img[:, :40] = (200, 120, 180)
    img[:, 40:] = (90, 40, 120)
    path = tmp_path / "img.jpg"
    Image.fromarray(img).save(path, quality=95)
    out = read_image(path)
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).mean() < 3


def test_rgba_composited_over_white(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., :3] = (200, 0, 100)
    rgba[:, :6, 3] = 255  # left opaque, right fully transparent
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = read_image(path)
    assert out.shape == (10, 12, 3)
    np.testing.assert_array_equal(out[:, :6], np.broadcast_to([200, 0, 100], (10, 6, 3)))
    np.testing.assert_array_equal(out[:, 6:], 255)


def test_grey_becomes_rgb(tmp_path):
    grey = np.arange(120, dtype=np.uint8).reshape(10, 12)
    path = tmp_path / "g.png"
    Image.fromarray(grey, "L").save(path)
    out = read_image(path)
    assert out.shape == (10, 12, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_16bit_png_and_tiff_scaled(tmp_path):
    ramp16 = np.linspace(0, 65535, 10 * 12).astype(np.uint16).reshape(10, 12)
    png = tmp_path / "deep.png"
    cv2.imwrite(str(png), ramp16)
    out = read_image(png)
    np.testing.assert_array_equal(out[..., 0], np.round(ramp16 / 257.0).astype(np.uint8))
    # 16-bit RGB TIFF
    rgb16 = np.stack([ramp16, ramp16 // 2, 65535 - ramp16], axis=-1)
    tif = tmp_path / "deep.tif"
    tifffile.imwrite(tif, rgb16, photometric="rgb")
    out = read_image(tif)
    np.testing.assert_array_equal(out, np.round(rgb16 / 257.0).astype(np.uint8))


def test_12bit_data_in_16bit_words_uses_its_range(tmp_path):
    data = np.linspace(0, 4095, 10 * 12).astype(np.uint16).reshape(10, 12)
    tif = tmp_path / "cam12.tif"
    tifffile.imwrite(tif, data)
    out = read_image(tif)
    assert out.max() == 255 and out.min() == 0
    np.testing.assert_array_equal(out[..., 0], np.round(data * (255 / 4095)).astype(np.uint8))


def test_float_tiff_scaled(tmp_path):
    data = np.linspace(0, 1, 10 * 12 * 3, dtype=np.float32).reshape(10, 12, 3)
    tif = tmp_path / "f.tif"
    tifffile.imwrite(tif, data, photometric="rgb")
    out = read_image(tif)
    np.testing.assert_array_equal(out, np.round(data * 255).astype(np.uint8))


# ------------------------------------------------------------------ failures


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="nothere.png") as info:
        read_image(tmp_path / "nothere.png")
    assert "does not exist" in str(info.value)
    with pytest.raises(ImageReadError, match="nothere.png"):
        image_size(tmp_path / "nothere.png")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.tif"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.tif") as info:
        read_image(path)
    assert "empty" in info.value.reason


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(ImageReadError, match="notes.png") as info:
        read_image(path)
    assert "not an image" in info.value.reason
    with pytest.raises(ImageReadError, match="notes.png"):
        image_size(path)


def test_corrupt_and_truncated_png_jpeg(tmp_path):
    img = _rgb(60, 80)
    for name in ("t.png", "t.jpg"):
        good = tmp_path / ("good_" + name)
        Image.fromarray(img).save(good)
        data = good.read_bytes()
        bad = tmp_path / ("truncated_" + name)
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageReadError, match="truncated_" + name):
            read_image(bad)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError, match="garbage.tif"):
        read_image(garbage)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


# ------------------------------------------------------------------ resize


def test_resize_area_averages_when_shrinking():
    img = np.zeros((4, 4, 3), np.uint8)
    img[::2, ::2] = 255  # one white pixel per 2x2 block
    out = resize_image(img, (2, 2))
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out, 64, atol=1)  # area mean, not a picked pixel
    assert resize_image(img, size=(8, 6)).shape == (6, 8, 3)
    mask = np.zeros((4, 4), np.uint8)
    assert resize_image(mask, (2, 2), interpolation="nearest").shape == (2, 2)


# ------------------------------------------------------------------ masks


def test_mask_round_trip_and_threshold(tmp_path):
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 10:30] = 255
    path = write_mask(tmp_path / "masks" / "m.png", mask)
    out = read_mask(path, (30, 40))
    np.testing.assert_array_equal(out, mask)
    assert read_mask(path, (30, 40, 3)).shape == (30, 40)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left
    # A non-binary mask is thresholded at > 0.
    soft = np.zeros((30, 40), np.uint8)
    soft[0, 0], soft[1, 1] = 1, 128
    Image.fromarray(soft).save(tmp_path / "soft.png")
    out = read_mask(tmp_path / "soft.png")
    assert out[0, 0] == 255 and out[1, 1] == 255 and out.sum() == 2 * 255
    # write_mask accepts booleans
    write_mask(tmp_path / "b.png", mask > 0)
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png"), mask)


def test_mask_wrong_size_names_file_and_sizes(tmp_path):
    path = write_mask(tmp_path / "small.png", np.zeros((30, 40), np.uint8))
    with pytest.raises(MaskError, match="small.png") as info:
        read_mask(path, (384, 512))
    assert "40x30" in str(info.value) and "512x384" in str(info.value)


def test_mask_unreadable(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    with pytest.raises(MaskError, match="bad.png"):
        read_mask(bad)
    with pytest.raises(MaskError, match="missing.png"):
        read_mask(tmp_path / "missing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MaskError, match="empty.png"):
        read_mask(empty)


# ------------------------------------------------------------------ listing


def test_list_images(tmp_path):
    for name in ("b.PNG", "a.tif", "c.JPeG", "d.svs", "e.bmp", "f.tiff", "g.jpg", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "z.png").write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "y.png").write_bytes(b"x")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.tif", "b.PNG", "c.JPeG", "d.svs", "e.bmp", "f.tiff", "g.jpg"]
    rec = list_images(tmp_path, recursive=True)
    assert [p.relative_to(tmp_path).as_posix() for p in rec][-1] == "sub/z.png"
    assert len(rec) == 8
    assert set(IMAGE_SUFFIXES) >= {".tif", ".tiff", ".svs", ".png", ".jpg", ".jpeg", ".bmp"}


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(GusaError, match="nowhere"):
        list_images(tmp_path / "nowhere")


# ------------------------------------------------------------------ cache


def test_downsample_cache_hit_miss_and_invalidation(tmp_path):
    img = _rgb(120, 160)
    src = tmp_path / "big.png"
    Image.fromarray(img).save(src)
    cache = DownsampleCache(tmp_path / "cache", memory_items=2)
    a = cache.get(src, (40, 30))
    expected = resize_image(img, (40, 30))
    np.testing.assert_array_equal(a, expected)
    assert cache.misses == 1
    files = list((tmp_path / "cache").glob("*.png"))
    assert len(files) == 1
    a[:] = 0  # the caller owns its copy
    np.testing.assert_array_equal(cache.get(src, (40, 30)), expected)
    assert cache.misses == 1 and cache.hits == 1
    # A fresh cache (new process) finds the PNG on disk without decoding the source.
    cache2 = DownsampleCache(tmp_path / "cache")
    np.testing.assert_array_equal(cache2.get(src, (40, 30)), expected)
    assert cache2.misses == 0
    # Another size is another entry; editing the file invalidates.
    assert cache2.get(src, (20, 15)).shape == (15, 20, 3)
    img2 = 255 - img
    Image.fromarray(img2).save(src)
    import os

    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    np.testing.assert_array_equal(cache2.get(src, (40, 30)), resize_image(img2, (40, 30)))


def test_downsample_cache_threads_decode_once(tmp_path):
    src = tmp_path / "big.png"
    Image.fromarray(_rgb(200, 240)).save(src)
    cache = DownsampleCache(tmp_path / "cache")
    results = []

    def work():
        results.append(cache.get(src, (60, 50)))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.misses == 1
    assert all(np.array_equal(r, results[0]) for r in results)


def test_downsample_cache_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="gone.png"):
        DownsampleCache(tmp_path / "c").get(tmp_path / "gone.png", (10, 10))


def test_tifffile_messages_do_not_leak_to_stderr(tmp_path, capfd):
    import logging

    import tifffile

    import gusa_core.imageio as imageio

    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(imageio.ImageReadError):
        imageio.read_image(path)
    logging.getLogger("tifffile").warning("<tifffile.TiffFile 'cut.tif'> a parser complaint")
    assert "tifffile" not in capfd.readouterr().err
