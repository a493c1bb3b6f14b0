"""Order of writes: clearing a mask, a save killed half-way, newer manifests, missing masks, stale temp files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from project_helpers import edit_manifest, make_project

from gusa_core.errors import MaskError, NewerVersionError, ProjectError
from gusa_core.project import Project


def _consistent(folder: Path) -> Project:
    """Reopen ``folder`` and check that every mask the manifest names exists and loads."""
    project = Project.open(folder, read_only=True)
    for rec in project.images:
        if rec.mask is not None:
            assert project.load_mask(rec.id).any()
    return project


def test_clear_mask_killed_between_manifest_and_delete(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    check = outside_snapshot(folder)
    script = textwrap.dedent(f"""
        import os, pathlib, signal
        from gusa_core.project import Project
        project = Project.open({str(folder)!r}, lock="killed")
        def killed(self, *a, **k):
            os.kill(os.getpid(), signal.SIGKILL)  # the power goes off right after the manifest was written
        pathlib.Path.unlink = killed
        project.save_mask(project.images[0].id, None)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=120, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    project = _consistent(folder)
    image_id = project.images[0].id
    assert project.images[0].mask is None and project.load_mask(image_id) is None
    assert (folder / "masks" / f"{image_id}.png").is_file()  # an orphan, harmless
    writer = Project.open(folder, lock="next")  # the dead writer's lock is stale
    writer.save_mask(image_id, None)  # clearing again removes the orphan
    assert not (folder / "masks" / f"{image_id}.png").exists()
    writer.close()
    check()


def test_clear_mask_whose_manifest_write_fails_keeps_the_file(tmp_path, outside_snapshot, monkeypatch):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    check = outside_snapshot(folder)
    image_id = project.images[0].id
    import gusa_core.project.project as project_module

    def full_disk(*args, **kwargs):
        raise ProjectError(folder / "gusa-project.json", "cannot write the manifest: No space left on device")

    monkeypatch.setattr(project_module, "write_manifest", full_disk)
    with pytest.raises(ProjectError, match="No space left"):
        project.save_mask(image_id, None)
    assert project.images[0].mask == f"masks/{image_id}.png"  # memory agrees with the disk
    monkeypatch.undo()
    assert _consistent(folder).images[0].mask == f"masks/{image_id}.png"
    check()


def test_clear_mask_writes_the_manifest_before_deleting(tmp_path, monkeypatch):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    image_id = project.images[0].id
    seen = []
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self.name == f"{image_id}.png":
            seen.append(json.loads((folder / "gusa-project.json").read_text(encoding="utf-8"))["images"][0]["mask"])
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    project.save_mask(image_id, None)
    assert seen == [None]


def test_newer_manifest_refuses_mask_saves_and_does_not_advise_the_backup(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    edit_manifest(folder, lambda d: d.update(version=99))
    check = outside_snapshot(folder)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    image_id = project.images[0].id
    with pytest.raises(NewerVersionError, match="manifest version 99"):
        project.save_mask(image_id, None)
    with pytest.raises(NewerVersionError, match="manifest version 99"):
        project.save_mask(project.images[1].id, np.full((12, 16), 255, np.uint8))
    with pytest.raises(NewerVersionError) as info:
        Project.open(folder)
    assert "update GuSA Studio" in str(info.value)
    assert ".bak" not in str(info.value) and "use_backup" not in str(info.value)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    check()


def test_stale_temp_files_are_cleaned_on_open_only_inside_the_project(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / ".gusa-project.json.abcd1234.tmp").write_text("outside: keep")
    stale = [folder / ".gusa-project.json.k2j4h5g6.tmp", folder / "masks" / ".img0.png.a1b2c3d4.png.tmp"]
    keep = [folder / "notes.tmp", folder / "masks" / "img9.png.tmp", folder / "runs" / "r" / ".run.json.abcdefgh.tmp"]
    for p in stale + keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("half a file")
    check = outside_snapshot(folder)
    Project.open(folder, read_only=True)
    assert all(p.exists() for p in stale)  # a reader never deletes
    Project.open(folder, lock="GuSA Studio").close()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    check()


def test_missing_mask_is_reported_by_name(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    image_id = project.images[0].id
    (folder / "masks" / f"{image_id}.png").unlink()
    check = outside_snapshot(folder)
    project = Project.open(folder, read_only=True)
    with pytest.raises(MaskError, match=f"mask missing for {image_id}"):
        project.load_mask(image_id)
    assert project.missing_masks() == [image_id]
    check()


def test_training_reports_a_missing_mask_instead_of_crashing(tmp_path, outside_snapshot):
    from gusa_core.data import ProjectDataset
    from gusa_core.training import TrainCallbacks, TrainConfig, Trainer

    folder = tmp_path / "case" / "project"
    project = make_project(folder, n=4, labels=("Normal", "Benign"), masked=2)
    image_id = project.images[0].id
    (folder / "masks" / f"{image_id}.png").unlink()
    dataset = ProjectDataset(project, project.ids(), input_size=(16, 16))
    assert not dataset.has_mask(0) and dataset.has_mask(1)
    assert dataset[0][3] is False
    dataset.mask_paths[0] = folder / "masks" / f"{image_id}.png"  # deleted while training runs
    with pytest.raises(MaskError, match=f"mask missing for {image_id}"):
        dataset.mask(0)
    check = outside_snapshot(folder)
    logs = []

    class Log(TrainCallbacks):
        def on_log(self, message):
            logs.append(message)

    config = TrainConfig(variant="baseline", folds=1, epochs=1, batch_size=2, input_size=(32, 32), pretrained="none",
                         device="cpu", workers=0)  # fmt: skip
    summary = Trainer(folder, folder / "runs" / "r", config, callbacks=Log()).run()
    assert summary["status"] == "finished"
    assert any(f"mask missing for {image_id}" in m for m in logs)
    check()


def test_training_refuses_fewer_than_two_classes(tmp_path, outside_snapshot, capsys):
    from gusa_core.cli.main import main

    folder = tmp_path / "case" / "project"
    make_project(folder, n=4, labels=("Benign", None))
    check = outside_snapshot(folder)
    code = main(["train", str(folder), "--out", str(folder / "runs" / "r"), "--epochs", "1", "--pretrained", "none"])
    assert code == 2
    err = capsys.readouterr().err
    assert "at least two classes" in err and "only class 'Benign' has images" in err
    assert not (folder / "runs" / "r").exists()
    check()
