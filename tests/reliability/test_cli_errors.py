"""No tracebacks for users: every failure of a verb is one line naming the file and what to do, exit status 2,
nothing half-written, nothing outside the test's folder changed."""

from __future__ import annotations

import errno
import json
import shutil

import pytest
from _models import edit_json, tiny_images, untrained_run
from _snapshot import outside_snapshot  # noqa: F401 - a fixture

from gusa_core.cli.main import main

pytestmark = pytest.mark.usefixtures("outside_snapshot")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny demo project and a finished 1-fold, 1-epoch run on it (copied by the tests that write)."""
    root = tmp_path_factory.mktemp("cli_errors")
    project, run = root / "demo", root / "run"
    assert main(["demo", str(project), "--per-class", "2", "--size", "64x48"]) == 0
    assert main(["train", str(project), "--out", str(run), "--epochs", "1", "--input-size", "64x48", "--folds", "1",
                 "--variant", "gusa", "--pretrained", "none", "--batch-size", "4", "--device", "cpu"]) == 0
    return project, run


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gusa: error: ")
    return lines[0]


def test_lr_nan_is_refused_before_anything_is_written(trained, tmp_path, capsys):
    project, _ = trained
    out = tmp_path / "run"
    rc = main(["train", str(project), "--out", str(out), "--lr", "nan", "--pretrained", "none"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "lr must be a finite number" in line and "--lr" in line
    assert not out.exists()


def test_absurd_input_size_is_refused(trained, tmp_path, capsys):
    project, _ = trained
    with pytest.raises(SystemExit) as info:
        main(["train", str(project), "--out", str(tmp_path / "run"), "--input-size", "160000x160000"])
    assert info.value.code == 2
    assert "too large" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused(trained, tmp_path, capsys):
    project, _ = trained
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    rc = main(["train", str(project), "--out", str(out), "--pretrained", "none"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and str(out) in line and "is a file" in line
    assert out.read_text(encoding="utf-8") == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_read_only_output_folder(trained, tmp_path, monkeypatch, capsys):
    """A read-only file system (simulated: the tests may run as root) gives one line and exit 2."""
    import gusa_core.atomic as atomic

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(dir))

    run = untrained_run(tmp_path / "run")
    images = tiny_images(tmp_path / "images")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    csv_path = tmp_path / "out" / "predictions.csv"
    capsys.readouterr()
    rc = main(["predict", str(run), *map(str, images), "--csv", str(csv_path), "--backend", "torch"])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and "read-only" in line and str(csv_path.parent) in line
    assert not csv_path.exists()


def _last_error(capsys) -> str:
    err = capsys.readouterr().err
    return "\n".join(line for line in err.splitlines() if line.startswith("gusa: error") or "Traceback" in line)


def test_disk_full_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch, capsys):
    import gusa_core.atomic as atomic

    run = untrained_run(tmp_path / "run")
    images = tiny_images(tmp_path / "images")
    csv_path = tmp_path / "predictions.csv"
    csv_path.write_text("the previous results\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    capsys.readouterr()
    rc = main(["predict", str(run), *map(str, images), "--csv", str(csv_path), "--backend", "torch"])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and "disk is full" in line
    assert csv_path.read_text(encoding="utf-8") == "the previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "predictions.csv", "run"]


def test_garbage_input_size_in_model_json(tmp_path, capsys):
    run = untrained_run(tmp_path / "run")
    edit_json(run / "fold-0" / "model.json", input_size="abc")
    images = tiny_images(tmp_path / "images")
    rc = main(["predict", str(run), *map(str, images)])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and str(run / "fold-0" / "model.json") in line and "input_size must be" in line


def test_broken_reinhard_in_model_json(tmp_path, capsys):
    run = untrained_run(tmp_path / "run")
    edit_json(run / "fold-0" / "model.json", reinhard={"method": "reinhard", "mean": [1, 2]})
    rc = main(["predict", str(run), *map(str, tiny_images(tmp_path / "images"))])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and "model.json" in line and "reinhard" in line


def test_garbage_in_run_json(tmp_path, capsys):
    run = untrained_run(tmp_path / "run")
    edit_json(run / "run.json", input_size="abc", class_names=7)
    rc = main(["predict", str(run), *map(str, tiny_images(tmp_path / "images"))])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and str(run / "run.json") in line and "input_size" in line and "class_names" in line


def test_broken_reinhard_in_run_json_on_resume(trained, tmp_path, capsys):
    project, run = trained
    out = shutil.copytree(run, tmp_path / "run")
    edit_json(out / "run.json", reinhard={"method": "reinhard", "mean": "broken"})
    before = (out / "run.json").read_bytes()
    rc = main(["train", str(project), "--out", str(out), "--resume", "--pretrained", "none"])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and str(out / "run.json") in line and "reinhard" in line
    assert (out / "run.json").read_bytes() == before


def test_garbage_config_in_run_json_on_resume(trained, tmp_path, capsys):
    project, run = trained
    out = shutil.copytree(run, tmp_path / "run")
    edit_json(out / "run.json", config={**json.loads((run / "run.json").read_text(encoding="utf-8"))["config"], "input_size": "abc"})
    before = (out / "run.json").read_bytes()
    rc = main(["train", str(project), "--out", str(out), "--resume", "--pretrained", "none"])
    line = _one_line(_last_error(capsys))
    assert rc == 2 and str(out / "run.json") in line and "input_size" in line
    assert (out / "run.json").read_bytes() == before


def test_resume_says_which_settings_it_keeps(trained, tmp_path, capsys):
    project, run = trained
    out = shutil.copytree(run, tmp_path / "run")
    rc = main(["train", str(project), "--out", str(out), "--resume", "--epochs", "5", "--variant", "rga",
               "--input-size", "128x96", "--pretrained", "none", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 0, err
    note = next(line for line in err.splitlines() if "--resume keeps the run's own settings" in line)
    assert "variant gusa (not rga)" in note and "epochs 1 (not 5)" in note and "input-size 64x48 (not 128x96)" in note


def test_unexpected_error_is_one_line_and_a_hint(tmp_path, monkeypatch, capsys):
    from gusa_core.cli import info

    def boom(args):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(info, "run", boom)
    rc = main(["info"])
    line = _one_line(capsys.readouterr().err)
    assert rc == 2 and "RuntimeError: something nobody expected" in line and "report" in line and "--debug" in line
    rc = main(["--debug", "info"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" in err and "something nobody expected" in err


def test_predict_json_errors_are_json(tmp_path, capsys):
    """``--json``: stdout is JSON lines from the first to the last, the error included."""
    rc = main(["predict", str(tmp_path / "no-such-run"), str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert rc == 2 and records and "no such run folder" in records[-1]["error"]
    assert _one_line(err)


def test_predict_json_stays_valid_with_unreadable_images(tmp_path, capsys):
    run = untrained_run(tmp_path / "run")
    images = tiny_images(tmp_path / "images")
    bad = tmp_path / "images" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    rc = main(["predict", str(run), str(tmp_path / "images"), "--json", "--backend", "torch"])
    out = capsys.readouterr().out
    records = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(records) == len(images) + 1
    assert [r["path"] for r in records if r["error"]] == [str(bad)]
    assert "NaN" not in out and "Infinity" not in out


def test_json_output_never_holds_bare_nan():
    from gusa_core.cli.options import json_line, strict_json

    text = json_line({"probs": {"Normal": float("nan"), "Benign": float("inf")}, "roi_fraction": -float("inf")})
    assert json.loads(text) == {"probs": {"Normal": None, "Benign": None}, "roi_fraction": None}
    assert json.loads(strict_json([1.5, float("nan")], indent=2)) == [1.5, None]
