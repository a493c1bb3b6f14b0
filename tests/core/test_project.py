"""Project: manifest round trip and safety, events, classes, masks, BACH import, CLI."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import gusa_core.atomic as atomic
from gusa_core import DEFAULT_CLASSES
from gusa_core.cli.main import main as cli_main
from gusa_core.errors import ImageReadError, MaskError, ProjectError
from gusa_core.imageio import read_mask, write_mask
from gusa_core.project import BACKUP_NAME, MANIFEST_NAME, ImageRecord, Project

HE_H, HE_W = 1536, 2048


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)
    return dst


def _small_png(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def bach_tif(tmp_path_factory) -> Path:
    """A TIFF as BACH ships them: 2048x1536 RGB, uncompressed, written here (no sample data needed)."""
    import tifffile

    rows = np.linspace(0, 255, HE_H, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, HE_W, dtype=np.float32)[None, :]
    image = np.stack([np.broadcast_to(rows, (HE_H, HE_W)), np.broadcast_to(cols, (HE_H, HE_W)),
                      np.full((HE_H, HE_W), 180, np.float32)], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("bach") / "bach_size.tif"
    tifffile.imwrite(path, image, photometric="rgb")
    return path


@pytest.fixture
def bach(tmp_path, bach_tif) -> Path:
    """BACH's layout: Photos/<Class>/<name>.tif + its header-less ground-truth CSV."""
    he_tif = bach_tif
    photos = tmp_path / "ICIAR2018" / "Photos"
    _link(he_tif, photos / "Normal" / "n001.tif")
    _link(he_tif, photos / "Normal" / "n002.tif")
    _link(he_tif, photos / "Invasive" / "iv001.tif")
    _link(he_tif, photos / "In Situ" / "is001.tif")
    _link(he_tif, photos / "Benign" / "b001.tif")
    (photos / "notes").mkdir()  # a sub-folder that is no class: ignored
    # BACH's CSV has no header; it overrides the folder of n002.
    (photos / "microscopy_ground_truth.csv").write_text("n001.tif,Normal\nn002.tif,Benign\niv001.tif,Invasive\n")
    return photos


@pytest.fixture
def small(tmp_path) -> Project:
    project = Project.create(tmp_path / "proj")
    for i in range(3):
        project.add_image(_small_png(tmp_path / "src" / f"img{i}.png", seed=i))
    project.save()
    return project


# ------------------------------------------------------------------ BACH import
def test_from_folder_bach_layout(bach, tmp_path):
    project = Project.from_folder(tmp_path / "proj", bach)
    labels = {r.id: r.label for r in project.images}
    assert labels == {"b001": "Benign", "is001": "InSitu", "iv001": "Invasive", "n001": "Normal", "n002": "Benign"}
    assert (tmp_path / "proj" / MANIFEST_NAME).is_file() and not project.dirty
    # Referenced in place, absolute because outside the project folder.
    rec = project.image("iv001")
    assert rec.path == (bach / "Invasive" / "iv001.tif").as_posix()
    assert project.image_path("iv001") == bach / "Invasive" / "iv001.tif"
    assert project.image_shape("iv001") == (HE_H, HE_W)
    assert not (tmp_path / "proj" / "images").exists()
    assert [r.id for r in Project.open(tmp_path / "proj").labelled()] == [r.id for r in project.labelled()]


def test_from_folder_with_masks_and_header_csv(bach, tmp_path):
    (bach / "microscopy_ground_truth.csv").unlink()
    (bach.parent / "microscopy_ground_truth.csv").write_text("filename,class\nb001.tif,Normal\n")
    masks = tmp_path / "masks_src"
    roi = np.zeros((HE_H, HE_W), np.uint8)
    roi[100:400, 200:900] = 1  # 0/1 masks are accepted and become 0/255
    write_mask(masks / "n001.png", roi)
    write_mask(masks / "iv001_mask.png", roi)
    project = Project.from_folder(tmp_path / "proj", bach, masks=masks)
    assert project.image("b001").label == "Normal"
    assert project.image("n001").mask == "masks/n001.png" and project.image("iv001").mask == "masks/iv001.png"
    assert project.image("b001").mask is None
    loaded = project.load_mask("n001")
    assert loaded.shape == (HE_H, HE_W) and loaded[200, 500] == 255 and loaded[0, 0] == 0
    assert int((loaded > 0).sum()) == 300 * 700


def test_from_folder_wrong_size_mask_is_refused_before_writing(bach, tmp_path):
    masks = tmp_path / "masks_src"
    write_mask(masks / "n001.png", np.ones((100, 120), np.uint8))
    (bach / "microscopy_ground_truth.csv").write_text("n001.tif,Normal\nn002.tif,Cancerous\n")
    with pytest.raises(ProjectError) as info:
        Project.from_folder(tmp_path / "proj", bach, masks=masks)
    msg = str(info.value)
    assert "2 problem" in msg and str(masks / "n001.png") in msg and "120x100" in msg and "Cancerous" in msg
    assert not (tmp_path / "proj").exists()


def test_from_folder_flat_and_refusals(tmp_path):
    flat = tmp_path / "flat"
    for name in ("a.png", "b.png", "a.jpg"):
        _small_png(flat / name)
    (flat / "readme.txt").write_text("not an image")
    project = Project.from_folder(tmp_path / "proj", flat)
    assert [(r.id, r.label) for r in project.images] == [("a", None), ("a-2", None), ("b", None)]
    with pytest.raises(ProjectError, match="already holds"):
        Project.from_folder(tmp_path / "proj", flat)
    with pytest.raises(ProjectError, match="does not exist"):
        Project.from_folder(tmp_path / "other", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="no images"):
        Project.from_folder(tmp_path / "other", tmp_path / "empty")


def test_cli_init(bach, tmp_path, capsys):
    rc = cli_main(["init", str(tmp_path / "proj"), "--images", str(bach)])
    out = capsys.readouterr().out
    assert rc == 0 and "5 images, 5 labelled, 0 with RoI masks" in out
    rc = cli_main(["init", str(tmp_path / "proj"), "--images", str(bach)])
    assert rc == 2 and "already holds" in capsys.readouterr().err


# ------------------------------------------------------------------ manifest
def test_manifest_round_trip_every_field(tmp_path):
    inside = _small_png(tmp_path / "proj" / "raw" / "x y#1.png")
    outside = _small_png(tmp_path / "elsewhere" / "cell.png")
    project = Project.create(tmp_path / "proj", classes=["Normal", "Tumour"], colors={"Tumour": (1, 2, 3)})
    a = project.add_image(inside, label="Tumour")
    b = project.add_image(outside)
    c = project.add_image(outside.with_name("cell.png"), copy=False)  # already there: same record
    assert c is b and len(project) == 2
    (d,) = project.add_images([_small_png(tmp_path / "src" / "cell.png")], copy=True)
    project.set_notes(b.id, "blurry\nre-scan")
    project.set_suggested(a.id, "Normal")
    project.reinhard_reference = "reference.json"
    project.save_mask(a.id, np.pad(np.ones((4, 4), np.uint8), ((2, 18), (3, 25))))
    project.save()

    data = json.loads((tmp_path / "proj" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert data["format"] == "gusa-project" and data["version"] == 1
    assert data["classes"] == ["Normal", "Tumour"] and data["class_colors"]["Tumour"] == [1, 2, 3]
    assert data["created"] and data["modified"]
    assert a.id == "x_y_1" and a.path == "raw/x y#1.png"
    assert b.path == outside.as_posix() and Path(b.path).is_absolute()
    assert d.id == "cell-2" and d.path == "images/cell-2.png" and (tmp_path / "proj" / "images" / "cell-2.png").is_file()

    reopened = Project.open(tmp_path / "proj")
    assert reopened.images == project.images
    assert [r.to_dict() for r in reopened.images] == [r.to_dict() for r in project.images]
    assert reopened.classes == ["Normal", "Tumour"] and reopened.class_colors == project.class_colors
    assert reopened.reinhard_reference == "reference.json"
    assert reopened.created == project.created and reopened.modified == project.modified
    assert reopened.image(a.id).mask == f"masks/{a.id}.png" and reopened.has_mask(a.id)
    assert not reopened.dirty
    # Unknown keys written by a future minor change survive a save.
    data["future_key"] = {"x": 1}
    data["images"][0]["future_field"] = 7
    (tmp_path / "proj" / MANIFEST_NAME).write_text(json.dumps(data))
    p2 = Project.open(tmp_path / "proj")
    p2.set_notes(a.id, "changed")
    p2.save()
    again = json.loads((tmp_path / "proj" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert again["future_key"] == {"x": 1} and again["images"][0]["future_field"] == 7


def test_save_keeps_backup_and_interrupted_save_leaves_manifest(small, monkeypatch):
    manifest = small.folder / MANIFEST_NAME
    small.set_label("img0", "Normal")
    small.save()
    first = manifest.read_text(encoding="utf-8")
    small.set_label("img1", "Benign")
    small.save()
    assert (small.folder / BACKUP_NAME).read_text(encoding="utf-8") == first
    good = manifest.read_text(encoding="utf-8")

    small.set_label("img2", "Invasive")
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith(MANIFEST_NAME):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(ProjectError, match="disk full"):
        small.save()
    monkeypatch.undo()
    assert manifest.read_text(encoding="utf-8") == good and small.dirty
    assert not [p for p in small.folder.iterdir() if p.name.endswith(".tmp")]
    assert Project.open(small.folder).image("img2").label is None

    def bad_dumps(*args, **kwargs):
        raise RuntimeError("crash while serialising")

    monkeypatch.setattr("gusa_core.project.project.json.dumps", bad_dumps)
    with pytest.raises(RuntimeError):
        small.save()
    monkeypatch.undo()
    assert manifest.read_text(encoding="utf-8") == good
    small.save()
    assert Project.open(small.folder).image("img2").label == "Invasive" and not small.dirty


def test_newer_version_is_refused_and_not_overwritten(small):
    manifest = small.folder / MANIFEST_NAME
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["version"] = 7
    manifest.write_text(json.dumps(data))
    before = manifest.read_bytes()
    with pytest.raises(ProjectError) as info:
        Project.open(small.folder)
    msg = str(info.value)
    assert str(manifest) in msg and "version 7" in msg and "version 1" in msg
    small.set_label("img0", "Normal")
    with pytest.raises(ProjectError, match="newer"):
        small.save()
    assert manifest.read_bytes() == before


def test_corrupt_manifest_points_at_valid_backup(small):
    small.set_label("img0", "Normal")
    small.save()  # the backup now holds a valid manifest
    manifest = small.folder / MANIFEST_NAME
    manifest.write_text('{"format": "gusa-project", "version": 1, "images": [')
    with pytest.raises(ProjectError) as info:
        Project.open(small.folder)
    msg = str(info.value)
    assert str(manifest) in msg and "not valid JSON" in msg and "use_backup=True" in msg
    restored = Project.open(small.folder, use_backup=True)
    assert len(restored) == 3
    restored.save()
    assert len(Project.open(small.folder)) == 3
    # A damaged manifest never replaces a good backup.
    assert json.loads((small.folder / BACKUP_NAME).read_text(encoding="utf-8"))["format"] == "gusa-project"


def test_open_errors(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ProjectError, match="not a GuSA project"):
        Project.open(tmp_path / "plain")
    (tmp_path / "plain" / MANIFEST_NAME).write_text("")
    with pytest.raises(ProjectError, match="empty"):
        Project.open(tmp_path / "plain")
    (tmp_path / "plain" / MANIFEST_NAME).write_text('{"format": "something-else"}')
    with pytest.raises(ProjectError, match="not a GuSA project manifest"):
        Project.open(tmp_path / "plain")
    bad = {"format": "gusa-project", "version": 1, "classes": ["A"], "images": [{"id": "x", "path": "x.png"}, {"id": "X", "path": "y.png"}]}
    (tmp_path / "plain" / MANIFEST_NAME).write_text(json.dumps(bad))
    with pytest.raises(ProjectError, match="appears twice"):
        Project.open(tmp_path / "plain")
    with pytest.raises(ProjectError, match="already holds"):
        Project.create(tmp_path / "plain")


def test_missing_image_files_still_open(small, tmp_path):
    path = small.image_path("img1")
    path.unlink()
    reopened = Project.open(small.folder)
    assert len(reopened) == 3 and reopened.image_path("img1") == path
    with pytest.raises(ImageReadError):
        reopened.image_shape("img1")


# ------------------------------------------------------------------ events
def test_events_fire_once_per_real_change(small, tmp_path):
    seen = []
    ev = small.events
    ev.label_changed.connect(lambda i, lab: seen.append(("label", i, lab)))
    ev.notes_changed.connect(lambda i: seen.append(("notes", i)))
    ev.suggested_changed.connect(lambda i, lab: seen.append(("suggested", i, lab)))
    ev.image_added.connect(lambda r: seen.append(("added", r.id)))
    ev.image_removed.connect(lambda i: seen.append(("removed", i)))
    ev.classes_changed.connect(lambda: seen.append(("classes",)))
    ev.mask_changed.connect(lambda i: seen.append(("mask", i)))
    ev.saved.connect(lambda: seen.append(("saved",)))
    assert not small.dirty
    small.set_label("img0", "Normal")
    small.set_label("img0", "Normal")
    small.set_notes("img0", "n")
    small.set_notes("img0", "n")
    small.set_suggested("img0", "Benign")
    small.set_suggested("img0", "Benign")
    small.set_class_color("Normal", (76, 175, 80))  # unchanged colour: no event
    rec = small.add_image(_small_png(tmp_path / "src" / "new.png"))
    small.add_image(tmp_path / "src" / "new.png")
    small.remove_image(rec.id)
    small.save_mask("img1", np.zeros((24, 32), np.uint8))  # nothing to remove
    assert small.dirty
    small.save()
    assert not small.dirty
    assert seen == [
        ("label", "img0", "Normal"),
        ("notes", "img0"),
        ("suggested", "img0", "Benign"),
        ("added", "new"),
        ("removed", "new"),
        ("saved",),
    ]
    with pytest.raises(ValueError, match="unknown class"):
        small.set_label("img0", "Cancer")
    with pytest.raises(KeyError):
        small.set_label("nope", "Normal")


def test_class_editing(small):
    seen = []
    small.events.classes_changed.connect(lambda: seen.append("classes"))
    small.events.label_changed.connect(lambda i, lab: seen.append((i, lab)))
    small.set_label("img0", "InSitu")
    small.set_label("img1", "InSitu")
    small.set_suggested("img2", "InSitu")
    seen.clear()
    small.rename_class("InSitu", "Carcinoma in situ")
    assert small.classes == ["Normal", "Benign", "Carcinoma in situ", "Invasive"]
    assert small.class_colors["Carcinoma in situ"] == (255, 152, 0) and "InSitu" not in small.class_colors
    assert [small.image(i).label for i in ("img0", "img1")] == ["Carcinoma in situ"] * 2
    assert small.image("img2").suggested == "Carcinoma in situ"
    assert seen == ["classes", ("img0", "Carcinoma in situ"), ("img1", "Carcinoma in situ")]
    with pytest.raises(ValueError, match="already exists"):
        small.rename_class("Normal", "benign")
    small.add_class("Stroma")
    assert small.classes[-1] == "Stroma" and len(small.class_colors["Stroma"]) == 3
    with pytest.raises(ValueError):
        small.add_class("stroma")
    seen.clear()
    small.remove_class("Carcinoma in situ")
    assert small.image("img0").label is None and small.image("img2").suggested is None
    assert seen == ["classes", ("img0", None), ("img1", None)]
    small.save()
    reopened = Project.open(small.folder)
    assert reopened.classes == ["Normal", "Benign", "Invasive", "Stroma"]
    assert reopened.labelled() == []


# ------------------------------------------------------------------ masks
def test_mask_save_load_delete(small):
    got = []
    small.events.mask_changed.connect(got.append)
    mask = np.zeros((24, 32), np.uint8)
    mask[5:10, 6:20] = 1
    assert small.load_mask("img0") is None and not small.has_mask("img0")
    path = small.save_mask("img0", mask)
    assert path == small.folder / "masks" / "img0.png" and small.has_mask("img0")
    assert not small.dirty, "save_mask saves the manifest by default"
    np.testing.assert_array_equal(small.load_mask("img0"), mask * 255)
    np.testing.assert_array_equal(read_mask(path), mask * 255)
    assert Project.open(small.folder).image("img0").mask == "masks/img0.png"
    small.save_mask("img0", np.zeros_like(mask), save_manifest=False)
    assert not path.exists() and small.image("img0").mask is None and small.dirty
    assert got == ["img0", "img0"]


def test_wrong_size_masks_raise_mask_error_naming_the_file(small):
    with pytest.raises(MaskError) as info:
        small.save_mask("img0", np.ones((10, 10), np.uint8))
    assert str(small.folder / "masks" / "img0.png") in str(info.value)
    assert not (small.folder / "masks" / "img0.png").exists()
    small.save_mask("img1", np.ones((24, 32), np.uint8))
    bad = small.mask_path("img1")
    write_mask(bad, np.ones((30, 30), np.uint8))  # replaced behind the project's back
    with pytest.raises(MaskError) as info:
        small.load_mask("img1")
    assert str(bad) in str(info.value) and "30x30" in str(info.value)


def test_mask_on_a_bach_size_image(bach, tmp_path):
    project = Project.from_folder(tmp_path / "proj", bach)
    roi = np.zeros((HE_H, HE_W), np.uint8)
    roi[700:900, 1000:1500] = 255
    project.save_mask("n001", roi)
    np.testing.assert_array_equal(Project.open(tmp_path / "proj").load_mask("n001"), roi)
    with pytest.raises(MaskError, match="n001.png"):
        project.save_mask("n001", roi[:, :1000])


# ------------------------------------------------------------------ threads
def test_threaded_saves_while_mutating(small):
    errors = []
    stop = threading.Event()

    def saver():
        try:
            while not stop.is_set():
                small.save()
        except Exception as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    threads = [threading.Thread(target=saver) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for k in range(150):
            small.set_notes(f"img{k % 3}", f"note {k}")
            small.set_label(f"img{k % 3}", DEFAULT_CLASSES[k % 4])
            if k % 25 == 0:
                small.add_class(f"Extra{k}")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors
    small.save()
    reopened = Project.open(small.folder)
    assert [r.to_dict() for r in reopened.images] == [r.to_dict() for r in small.images]
    assert reopened.classes == small.classes
    json.loads((small.folder / BACKUP_NAME).read_text(encoding="utf-8"))


def test_record_from_dict_validation():
    assert ImageRecord.from_dict({"id": "a", "path": "a.png"}) == ImageRecord("a", "a.png")
    with pytest.raises(ValueError):
        ImageRecord.from_dict({"id": "", "path": "a.png"})
    with pytest.raises(ValueError):
        ImageRecord.from_dict({"id": "a", "path": "a.png", "label": 3})
