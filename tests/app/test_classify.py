"""Classify a folder from the dialog: errors listed, cancel, CSV identical to `gusa predict`."""

from __future__ import annotations

import shutil
import threading

import pytest

from app.classify.classify_dialog import ClassifyFolderDialog


@pytest.fixture
def folder(tiny_run, tmp_path):
    """Six demo images, a truncated TIFF and a text file pretending to be a PNG."""
    project_folder, _ = tiny_run
    src = sorted((project_folder / "images").iterdir())[:6]
    out = tmp_path / "batch"
    out.mkdir()
    for p in src:
        shutil.copy(p, out / p.name)
    (out / "corrupt.tif").write_bytes(b"II*\x00" + b"\x00" * 40)
    (out / "notes.png").write_text("this is not an image")
    return out


def _dialog(qtbot, tiny_run, **kw):
    from gusa_core.project import Project

    project_folder, run_dir = tiny_run
    dlg = ClassifyFolderDialog(Project.open(project_folder), **kw)
    qtbot.addWidget(dlg)
    dlg.set_run(run_dir, None)
    return dlg


def test_errors_are_listed_and_the_rest_classified(qtbot, tiny_run, folder, error_messages):
    dlg = _dialog(qtbot, tiny_run)
    dlg.set_folder(folder)
    with qtbot.waitSignal(dlg.classification_finished, timeout=120_000) as blocker:
        assert dlg.start()
    assert blocker.args == [8]
    recs = {r["path"].rsplit("/", 1)[-1]: r for r in dlg.model.records}
    assert recs["corrupt.tif"]["error"] and "corrupt.tif" in recs["corrupt.tif"]["error"]
    assert recs["notes.png"]["error"] and "notes.png" in recs["notes.png"]["error"]
    good = [r for r in dlg.model.records if not r["error"]]
    assert len(good) == 6
    # the summary's class counts add up to the classified files; the two failures are counted apart
    import re

    summary = dlg.summary_label.text()
    assert summary.startswith("8 file(s): 6 classified (") and "2 could not be classified" in summary, summary
    inside = summary.split("classified (", 1)[1].split(")", 1)[0]
    assert sum(int(n) for n in re.findall(r" (\d+)", inside)) == 6
    for r in good:
        assert r["predicted"] in dlg.model.class_names
        assert abs(sum(r["probs"].values()) - 1) < 1e-5
        assert r["preview"].ndim == 3
    # the errors filter shows exactly the two bad files
    dlg.class_filter.setCurrentIndex(dlg.class_filter.findData("__errors__"))
    assert dlg.proxy.rowCount() == 2
    assert not error_messages


def test_csv_equals_gusa_predict(qtbot, tiny_run, folder, tmp_path):
    from gusa_core.cli.main import main

    _, run_dir = tiny_run
    dlg = _dialog(qtbot, tiny_run)
    dlg.set_folder(folder)
    with qtbot.waitSignal(dlg.classification_finished, timeout=120_000):
        dlg.start()
    app_csv = dlg.export_csv(tmp_path / "app.csv")
    assert main(["predict", str(run_dir), str(folder), "--csv", str(tmp_path / "cli.csv")]) == 0
    assert app_csv.read_text(encoding="utf-8") == (tmp_path / "cli.csv").read_text(encoding="utf-8")
    assert len(app_csv.read_text(encoding="utf-8").splitlines()) == 9


def test_cancel_stops_within_one_image(qtbot, tiny_run, folder):
    """The second image blocks until the test has pressed Cancel: nothing after it is shown."""
    from gusa_core.inference import Predictor

    release = threading.Event()

    class Gated:
        def __init__(self, inner):
            self._inner, self.calls = inner, 0

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def submit_prepared(self, *a, **k):  # classify_paths queues a batch, then collects it
            self.calls += 1
            wait = self._inner.submit_prepared(*a, **k)
            if self.calls != 2:
                return wait

            def gated():
                release.wait(30)
                return wait()

            return gated

    dlg = _dialog(qtbot, tiny_run, predictor_factory=lambda *a, **k: Gated(Predictor.from_run(*a, **k)))
    dlg.set_folder(folder)
    with qtbot.waitSignal(dlg.record_added, timeout=120_000):
        dlg.start()
    with qtbot.waitSignal(dlg.classification_finished, timeout=60_000):
        dlg.cancel()
        release.set()
    assert len(dlg.model.records) == 1
    assert "cancelled" in dlg.progress_label.text()


def test_add_to_project_with_suggestions(qtbot, tiny_run, folder, tmp_path):
    from gusa_core.project import Project

    project_folder, run_dir = tiny_run
    copy = tmp_path / "proj"
    shutil.copytree(project_folder, copy)
    project = Project.open(copy)
    before = len(project.images)
    dlg = ClassifyFolderDialog(project)
    qtbot.addWidget(dlg)
    dlg.set_run(run_dir, 0)
    dlg.set_folder(folder)
    with qtbot.waitSignal(dlg.classification_finished, timeout=120_000):
        dlg.start()
    assert dlg.add_to_project() == 6
    reopened = Project.open(copy)
    assert len(reopened.images) == before + 6
    added = reopened.images[before:]
    assert all(r.suggested in reopened.classes and r.label is None for r in added)
