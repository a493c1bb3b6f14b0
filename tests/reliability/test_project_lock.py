"""One writer per project: the lock file, read-only mode, take-over, stale locks, writing CLI verbs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from project_helpers import make_project, write_png

from gusa_core.cli.main import main
from gusa_core.errors import ProjectLockedError, ReadOnlyProjectError
from gusa_core.project import Project
from gusa_core.project.lock import LOCK_NAME, ProjectLock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_lock(folder, *, host=None, pid=None, heartbeat=None, purpose="GuSA Studio"):
    (folder / LOCK_NAME).write_text(json.dumps({
        "purpose": purpose, "host": host or socket.gethostname(), "pid": pid or os.getpid(),
        "since": "2026-01-01T00:00:00+00:00", "heartbeat": time.time() if heartbeat is None else heartbeat,
        "token": "someone-else"}))  # fmt: skip


def test_second_writer_is_refused_naming_the_holder(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    check = outside_snapshot(folder)
    first = Project.open(folder, lock="GuSA Studio")
    with pytest.raises(ProjectLockedError) as info:
        Project.open(folder, lock="GuSA Studio")
    text = str(info.value)
    assert f"host {socket.gethostname()}" in text and f"pid {os.getpid()}" in text and "since " in text
    assert info.value.holder.purpose == "GuSA Studio"
    first.close()
    assert not (folder / LOCK_NAME).exists()
    Project.open(folder, lock="GuSA Studio").close()  # free again
    check()


def test_read_only_project_refuses_every_change(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    writer = Project.open(folder, lock="GuSA Studio")
    reader = Project.open(folder, read_only=True)
    manifest = (folder / "gusa-project.json").read_bytes()
    masks = sorted((folder / "masks").iterdir())
    check = outside_snapshot(folder)
    image_id = reader.images[0].id
    for change in (
        lambda: reader.set_label(image_id, "Normal"),
        lambda: reader.set_notes(image_id, "x"),
        lambda: reader.set_suggested(image_id, "Normal"),
        lambda: reader.add_class("Extra"),
        lambda: reader.rename_class("Normal", "Healthy"),
        lambda: reader.remove_class("Normal"),
        lambda: reader.remove_image(image_id),
        lambda: reader.save_mask(image_id, None),
        lambda: reader.save(),
        lambda: setattr(reader, "reinhard_reference", image_id),
    ):
        with pytest.raises(ReadOnlyProjectError, match="read-only: GuSA Studio"):
            change()
    assert (folder / "gusa-project.json").read_bytes() == manifest
    assert sorted((folder / "masks").iterdir()) == masks
    writer.close()
    check()


def test_unlocked_script_does_not_save_over_a_live_writer(tmp_path):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    app = Project.open(folder, lock="GuSA Studio")
    script = Project.open(folder)
    script.set_label(script.images[2].id, "Normal")
    with pytest.raises(ProjectLockedError, match="GuSA Studio"):
        script.save()
    app.set_label(app.images[2].id, "InSitu")
    app.save()
    app.close()
    script.save()  # the writer is gone: the script may save now
    assert Project.open(folder).images[2].label == "Normal"


def test_take_over_stops_the_previous_writer(tmp_path):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    first = Project.open(folder, lock="window 1")
    second = Project.open(folder, lock="window 2", take_over=True)
    first.set_label(first.images[0].id, "InSitu")
    with pytest.raises(ProjectLockedError, match="window 2 .*took it over"):
        first.save()
    with pytest.raises(ProjectLockedError):
        first.refresh_lock()
    assert first.read_only and not first.locked
    second.set_label(second.images[1].id, "Invasive")
    second.save()
    second.refresh_lock()
    reopened = Project.open(folder, read_only=True)
    assert reopened.images[0].label == "Normal" and reopened.images[1].label == "Invasive"
    first.close()  # must not remove the second window's lock
    assert ProjectLock(folder).holder().purpose == "window 2"
    second.close()


@pytest.mark.parametrize(
    "kind",
    ["dead pid, this host", "old heartbeat, other host", "empty file"],
)
def test_stale_lock_is_broken(tmp_path, kind):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    if kind == "dead pid, this host":
        _fake_lock(folder, pid=_dead_pid())
    elif kind == "old heartbeat, other host":
        _fake_lock(folder, host="elsewhere", pid=1, heartbeat=time.time() - 3600)
    else:
        (folder / LOCK_NAME).write_text("")
        os.utime(folder / LOCK_NAME, (time.time() - 60, time.time() - 60))
    project = Project.open(folder, lock="GuSA Studio")
    assert ProjectLock(folder).holder().pid == os.getpid()
    project.close()
    assert sorted(p.name for p in folder.iterdir()) == ["gusa-project.json", "gusa-project.json.bak", "images", "masks"]


def test_live_lock_of_another_host_is_respected(tmp_path):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    _fake_lock(folder, host="lab-pc-7", pid=4242)
    with pytest.raises(ProjectLockedError, match="host lab-pc-7, pid 4242, since 2026-01-01"):
        Project.open(folder, lock="GuSA Studio")
    assert json.loads((folder / LOCK_NAME).read_text(encoding="utf-8"))["token"] == "someone-else"


def test_exactly_one_of_many_racing_writers_wins(tmp_path):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    barrier = threading.Barrier(8)
    results = []

    def race():
        barrier.wait()
        try:
            results.append(ProjectLock(folder, purpose="racer").acquire())
        except ProjectLockedError:
            results.append(None)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].owned


def test_writing_cli_refuses_while_the_app_holds_the_folder(tmp_path, outside_snapshot, capsys):
    src = tmp_path / "case" / "src"
    write_png(src / "a.png")
    target = tmp_path / "case" / "new"
    app = ProjectLock(target, purpose="GuSA Studio").acquire()  # the app is creating a project there
    check = outside_snapshot(target)
    assert main(["init", str(target), "--images", str(src)]) == 2
    err = capsys.readouterr().err
    assert "GuSA Studio" in err and f"pid {os.getpid()}" in err and "since" in err
    assert sorted(p.name for p in target.iterdir()) == [LOCK_NAME]
    check()
    app.release()


def test_writing_cli_in_another_process_names_the_holder(tmp_path):
    folder = tmp_path / "case" / "project"
    folder.mkdir(parents=True)
    src = tmp_path / "case" / "src"
    write_png(src / "a.png")
    lock = ProjectLock(folder, purpose="GuSA Studio").acquire()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-m", "gusa_core.cli", "demo", str(folder), "--per-class", "1", "--size", "32x32"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "GuSA Studio" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]
    lock.release()


def test_cli_training_takes_no_project_lock_but_its_run_folder_is_one_trainers(tmp_path, outside_snapshot, capsys):
    from gusa_core.runs import run_lock_path

    folder = tmp_path / "case" / "project"
    make_project(folder, n=4, labels=("Normal", "Benign"))
    app = Project.open(folder, lock="GuSA Studio")  # the app is open and painting
    run_dir = folder / "runs" / "r"
    lock_file = run_lock_path(run_dir)
    other = ProjectLock(lock_file.parent, purpose="training", name=lock_file.name).acquire()  # the app trains into r
    check = outside_snapshot(folder)
    code = main(["train", str(folder), "--out", str(run_dir), "--epochs", "1", "--pretrained", "none", "--resume"])
    assert code == 2
    err = capsys.readouterr().err
    assert "training (host" in err and f"pid {os.getpid()}" in err
    assert sorted(p.name for p in run_dir.iterdir()) == [lock_file.name]
    other.release()
    assert app.locked and ProjectLock(folder).holder().purpose == "GuSA Studio"  # never touched by train
    app.close()
    check()
