"""gusa_core.inference: ensemble predictions, attention maps, backends, folder classification."""

from __future__ import annotations

import csv
import io
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from gusa_core.errors import GusaError  # noqa: E402
from gusa_core.inference import Predictor, classify_paths, collect_images  # noqa: E402
from gusa_core.inference.outputs import overlay_attention, predictions_csv_text, write_predictions_csv  # noqa: E402
from gusa_core.runs import write_untrained_run  # noqa: E402

torch.set_num_threads(2)

SIZE = (64, 48)  # (w, h): tiny, divisible by 16
CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]


def _save_run(folder, variant, *, folds=2, reinhard=None):
    write_untrained_run(folder, variant=variant, class_names=CLASSES, input_size=SIZE, folds=folds, seed=100, reinhard=reinhard)
    return folder


@pytest.fixture(scope="module")
def roi_run(tmp_path_factory):
    return _save_run(tmp_path_factory.mktemp("runs") / "fa-gusa", "fa-gusa")


@pytest.fixture(scope="module")
def roi_predictor(roi_run):
    return Predictor.from_run(roi_run, backend="torch")


@pytest.fixture(scope="module")
def cam_run(tmp_path_factory):
    return _save_run(tmp_path_factory.mktemp("runs") / "fa", "fa")


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(100, 130), (48, 64), (97, 61)]
    return [rng.integers(0, 256, size=(*shapes[i % 3], 3), dtype=np.uint8) for i in range(n)]


def _reference(run, images, *, fold=None):
    """Independent oracle: load each fold, pre-process, forward, softmax, bilinear up-sampling."""
    from gusa_core.checkpoint import load_model
    from gusa_core.data import preprocess

    dirs = sorted(run.glob("fold-*")) if fold is None else [run / f"fold-{fold}"]
    probs, maps = [], []
    for d in dirs:
        model, _ = load_model(d)
        x = torch.stack([preprocess(im, SIZE, None) for im in images])
        with torch.no_grad():
            out = model(x)
        probs.append(torch.softmax(out.logits, 1).numpy())
        maps.append(out.roi)
    p = np.mean(probs, axis=0)
    atts = []
    for i, im in enumerate(images):
        roi = torch.stack([m[i : i + 1] for m in maps]).mean(0)
        atts.append(F.interpolate(roi, size=im.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy())
    return p, atts


def test_ensemble_is_mean_of_fold_softmax_and_roi_at_image_resolution(roi_run, roi_predictor):
    images = _images()
    pred = roi_predictor
    assert pred.n_models == 2 and pred.class_names == CLASSES and pred.input_size == SIZE
    out = pred.predict(images)
    ref_p, ref_att = _reference(roi_run, images)
    for o, p, att, im in zip(out, ref_p, ref_att, images):
        np.testing.assert_allclose(o.probs, p, atol=1e-5)
        assert o.probs.sum() == pytest.approx(1.0)
        assert o.index == int(np.argmax(p)) and o.label == CLASSES[o.index]
        assert o.attention_kind == "roi"
        assert o.attention.shape == im.shape[:2] and o.attention.dtype == np.float32
        np.testing.assert_allclose(o.attention, att, atol=1e-5)
        # roi_fraction is measured on the map at the network's input size (cheap, and no full-size map needed)
        low = torch.from_numpy(o.attention_lowres)[None, None]
        at_input = F.interpolate(low, size=(16 * low.shape[2], 16 * low.shape[3]), mode="bilinear", align_corners=False)
        assert o.roi_fraction == pytest.approx(float((at_input > 0.5).float().mean()), abs=1e-6)
        assert abs(o.roi_fraction - np.mean(att > 0.5)) < 0.02  # and it is close to the full-size share


def test_single_fold_and_fold_folder(roi_run):
    images = _images(2)
    ref_p, _ = _reference(roi_run, images, fold=1)
    for pred in (Predictor.from_run(roi_run, fold=1, backend="torch"), Predictor.from_run(roi_run / "fold-1", backend="torch")):
        assert pred.n_models == 1
        np.testing.assert_allclose([o.probs for o in pred.predict(images)], ref_p, atol=1e-5)
    with pytest.raises(GusaError, match="fold 7"):
        Predictor.from_run(roi_run, fold=7)
    with pytest.raises(GusaError, match="nope"):
        Predictor.from_run(roi_run / "nope")


def test_settings_travel_with_the_model(tmp_path):
    """The Reinhard reference stored in model.json is applied before the network."""
    from gusa_core.data import preprocess
    from gusa_core.stain import ReinhardNormalizer

    ref = ReinhardNormalizer.default().to_dict()
    run = _save_run(tmp_path / "run", "fa-gusa", folds=1, reinhard=ref)
    images = _images(1)
    pred = Predictor.from_run(run, backend="torch")
    _, tensors = pred.prepare(images[0])
    expected = preprocess(images[0], SIZE, ReinhardNormalizer.from_dict(ref))
    torch.testing.assert_close(torch.from_numpy(tensors[0]), expected)


def test_onnx_backend_agrees_with_torch(roi_run, roi_predictor):
    images = _images()
    a = roi_predictor.predict(images)
    onnx = Predictor.from_run(roi_run, backend="onnx")
    assert onnx.backend == "onnxruntime"
    assert (roi_run / "fold-0" / "model.onnx").is_file()
    b = onnx.predict(images)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-4)
        np.testing.assert_allclose(x.attention, y.attention, atol=1e-4)
    # cached: a second predictor reuses the export
    mtime = (roi_run / "fold-0" / "model.onnx").stat().st_mtime_ns
    Predictor.from_run(roi_run, backend="onnx")
    assert (roi_run / "fold-0" / "model.onnx").stat().st_mtime_ns == mtime


def test_gradcam_attention_for_models_without_roi(cam_run):
    from gusa_core.checkpoint import load_model
    from gusa_core.data import preprocess
    from gusa_core.inference.gradcam import grad_cam

    images = _images(2)
    pred = Predictor.from_run(cam_run, fold=0, backend="torch")
    assert pred.attention_kind == "gradcam"
    out = pred.predict(images)
    model, _ = load_model(cam_run / "fold-0")
    for o, im in zip(out, images):
        x = preprocess(im, SIZE, None)[None]
        cam = grad_cam(model, x, class_idx=o.index)
        expected = F.interpolate(cam[:, None].float(), size=im.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        np.testing.assert_allclose(o.attention, expected.detach().numpy(), atol=1e-4)
        assert o.attention.min() >= 0 and o.attention.max() <= 1
    # the ONNX path (CAM from the exported graph) gives the same maps
    onnx = Predictor.from_run(cam_run, fold=0, backend="onnx")
    for o, b in zip(out, onnx.predict(images)):
        np.testing.assert_allclose(o.probs, b.probs, atol=1e-4)
        np.testing.assert_allclose(o.attention, b.attention, atol=1e-3)


# ----------------------------------------------------------- many files
def _write_folder(folder, n=5):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(_images(n, seed=1)):
        p = folder / f"img{i}.png"
        cv2.imwrite(str(p), im[:, :, ::-1])
        paths.append(p)
    return paths


def test_classify_paths_in_order_with_errors(roi_predictor, tmp_path):
    good = _write_folder(tmp_path / "imgs", 4)
    corrupt = tmp_path / "imgs" / "broken.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 20)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    paths = [good[0], corrupt, good[1], text, good[2], good[3]]
    pred = roi_predictor
    records = list(classify_paths(pred, paths, batch_size=2))
    assert [r["index"] for r in records] == list(range(len(paths)))
    assert [r["path"] for r in records] == [str(p) for p in paths]
    assert all(r["total"] == len(paths) for r in records)
    errors = [r for r in records if r["error"]]
    assert [r["path"] for r in errors] == [str(corrupt), str(text)]
    assert all(str(p) in r["error"] for r, p in zip(errors, [corrupt, text]))
    ok = [r for r in records if not r["error"]]
    assert len(ok) == 4
    from gusa_core.imageio import read_image

    direct = pred.predict([read_image(p) for p in good])
    for r, d in zip(ok, direct):
        assert r["predicted"] == d.label
        assert sum(r["probs"].values()) == pytest.approx(1.0)
        np.testing.assert_allclose(list(r["probs"].values()), d.probs, atol=1e-6)
        assert r["prediction"].path == r["path"]
        assert r["images_per_s"] > 0


def test_classify_paths_honours_stop(roi_predictor, tmp_path):
    paths = _write_folder(tmp_path / "imgs", 5)
    stop = threading.Event()
    pred = roi_predictor
    seen = []
    for rec in classify_paths(pred, paths, batch_size=1, stop=stop):
        seen.append(rec)
        if len(seen) == 2:
            stop.set()
    assert len(seen) == 2
    stop.set()
    assert list(classify_paths(pred, paths, stop=stop)) == []


def test_collect_images(tmp_path):
    paths = _write_folder(tmp_path / "a", 3)
    (tmp_path / "a" / "readme.txt").write_text("x")
    sub = _write_folder(tmp_path / "a" / "sub", 1)
    odd = tmp_path / "odd.xyz"
    odd.write_bytes(b"123")
    assert collect_images([tmp_path / "a"]) == paths
    assert set(collect_images([tmp_path / "a"], recursive=True)) == set(paths + sub)
    assert collect_images([odd, paths[0]]) == [odd, paths[0]]
    with pytest.raises(GusaError, match="missing.png"):
        collect_images([tmp_path / "missing.png"])


def test_predictions_csv(tmp_path):
    recs = [
        {"path": "a.png", "predicted": "Benign", "probs": dict(zip(CLASSES, [0.1, 0.7, 0.15, 0.05])), "roi_fraction": 0.25, "error": None},
        {"path": "b,c.tif", "predicted": None, "probs": None, "roi_fraction": None, "error": "cannot read image b,c.tif: truncated"},
    ]
    out = write_predictions_csv(tmp_path / "p.csv", recs, CLASSES)
    text = out.read_text(encoding="utf-8")
    assert text == predictions_csv_text(recs, CLASSES)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["path", "predicted"] + [f"prob_{c}" for c in CLASSES] + ["roi_fraction", "error"]
    assert rows[1] == ["a.png", "Benign", "0.100000", "0.700000", "0.150000", "0.050000", "0.250000", ""]
    assert rows[2][0] == "b,c.tif" and rows[2][2:7] == [""] * 5 and "truncated" in rows[2][7]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_overlay_attention():
    from matplotlib import colormaps

    image = np.full((6, 8, 3), 100, np.uint8)
    att = np.zeros((6, 8), np.float32)
    att[:, 4:] = 1.0
    copy = image.copy()
    out = overlay_attention(image, att, alpha=0.0)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(image, copy)  # input untouched
    full = overlay_attention(image, att, alpha=1.0)
    assert full.shape == (6, 8, 3) and full.dtype == np.uint8
    jet = colormaps["jet"]
    np.testing.assert_allclose(full[0, 0], np.array(jet(0.0)[:3]) * 255, atol=1)
    np.testing.assert_allclose(full[0, 7], np.array(jet(1.0)[:3]) * 255, atol=1)
    # a low-resolution map is up-sampled to the image
    assert overlay_attention(image, np.ones((3, 4)), alpha=0.5).shape == (6, 8, 3)
