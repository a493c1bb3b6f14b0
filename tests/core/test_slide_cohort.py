"""A slide cohort's robustness: resume checks the sweep settings; a lost rank does not hang the others."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from slide_fixtures import TissuePainter, write_pyramid_tiff

from gusa_core.cli.main import main
from gusa_core.inference.slide_cohort import merge_cohort, settings_changes
from gusa_core.inference.slide_outputs import SUMMARY_FILE

MPP = 3.36  # a BACH field is 256 x 192 level-0 pixels: few fields per slide


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    out = []
    for i, (w, h) in enumerate([(1024, 768), (768, 768), (1024, 512)]):
        out.append(write_pyramid_tiff(folder / f"s{i}.tif", w, h, painter=TissuePainter(w, h, seed=i, n_blobs=3, size=0.3),
                                      mpp=MPP, levels=[1, 4], tile=256))
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _args(run_dir, paths, out, *extra):
    return ["predict-slide", str(run_dir), *map(str, paths), "--out", str(out), "--batch-size", "4", "--no-tiff", *extra]


def test_resume_redoes_a_slide_swept_with_other_settings(tiny_run, slides, tmp_path, capsys):
    _, run_dir = tiny_run
    out = tmp_path / "out"
    two = slides[:2]
    assert main(_args(run_dir, two, out, "--overlap", "0.25")) == 0
    capsys.readouterr()
    first = json.loads((out / "s0" / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert first["settings"]["overlap"] == 0.25 and len(first["settings"]["weights"]) == 64

    # other overlap: both slides are redone, and say why
    assert main(_args(run_dir, two, out)) == 0
    text = capsys.readouterr().out
    assert text.count("swept before with other settings (overlap 0.25 → 0.5): redoing") == 2
    again = json.loads((out / "s0" / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert again["settings"]["overlap"] == 0.5 and again["fields"] > first["fields"]
    rows = _rows(out / "cohort.csv")
    assert [r["status"] for r in rows] == ["done", "done"]
    assert all("redone" in r["note"] and "overlap 0.25 → 0.5" in r["note"] for r in rows)

    # the same settings: skipped
    assert main(_args(run_dir, two, out)) == 0
    assert capsys.readouterr().out.count("already done, skipped") == 2

    # another tissue threshold, one fold instead of the ensemble: both named
    assert main(_args(run_dir, two[:1], out, "--min-tissue", "0.5", "--fold", "0")) == 0
    text = capsys.readouterr().out
    assert "tissue threshold 0.25 → 0.5" in text and "run weights" in text and "models in the ensemble 2 → 1" in text

    # a summary written without settings (an older version) is redone rather than trusted
    summary = json.loads((out / "s1" / SUMMARY_FILE).read_text(encoding="utf-8"))
    del summary["settings"]
    (out / "s1" / SUMMARY_FILE).write_text(json.dumps(summary))
    assert main(_args(run_dir, two[1:], out)) == 0
    assert "(settings not recorded): redoing" in capsys.readouterr().out


def test_cohort_table_marks_slides_swept_with_other_settings(tiny_run, slides, tmp_path, capsys):
    _, run_dir = tiny_run
    out = tmp_path / "out"
    assert main(_args(run_dir, slides[:1], out, "--overlap", "0.25")) == 0
    capsys.readouterr()
    swept = json.loads((out / "s0" / SUMMARY_FILE).read_text(encoding="utf-8"))["settings"]
    now = dict(swept, overlap=0.5)
    assert settings_changes(swept, swept) == [] and settings_changes(swept, now) == ["overlap 0.25 → 0.5"]
    path, counts = merge_cohort(slides, out, ["Normal", "Benign", "InSitu", "Invasive"], sweep=now)
    assert counts == {"done": 0, "failed": 0, "stale": 1, "pending": 2}
    rows = _rows(path)
    assert [r["status"] for r in rows] == ["stale", "not done", "not done"]
    assert "other settings (overlap 0.25 → 0.5)" in rows[0]["error"] and rows[1]["error"] == "not swept yet"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(run_dir, paths, out, tmp_path, *extra):
    """Two ranks of a distributed sweep started as a multi-node launcher starts them (no agent to stop the others)."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, OMP_NUM_THREADS="1", RANK=str(rank), LOCAL_RANK="0", WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   PYTHONPATH=os.pathsep.join([str(os.getcwd()), os.environ.get("PYTHONPATH", "")]))
        logs = [open(tmp_path / f"rank{rank}.{k}", "w") for k in ("out", "err")]
        cmd = [sys.executable, "-m", "gusa_core.cli", *_args(run_dir, paths, out, "--backend", "torch", *extra)]
        procs.append((subprocess.Popen(cmd, stdout=logs[0], stderr=logs[1], env=env), logs))
    return procs


def _wait_for(condition, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.2)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_lost_rank_does_not_hang_the_others(tiny_run, slides, tmp_path, how):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available() or not hasattr(os, "mkfifo"):
        pytest.skip("needs torch.distributed with gloo and named pipes")
    _, run_dir = tiny_run
    stuck = tmp_path / "stuck.tif"
    os.mkfifo(stuck)  # opening it blocks: the rank that owns it hangs there
    out = tmp_path / "out"
    # rank 0 sweeps s0 and s2; rank 1 sweeps s1, then hangs on the pipe
    paths = [slides[0], slides[1], slides[2], stuck]
    timeout = "600" if how == "killed" else "5"
    procs = _launch(run_dir, paths, out, tmp_path, "--rank-timeout", timeout)
    (rank0, logs0), (rank1, logs1) = procs
    try:
        _wait_for(lambda: all((out / n / SUMMARY_FILE).is_file() for n in ("s0", "s1", "s2")) or rank0.poll() is not None,
                  240)
        if how == "killed":
            rank1.send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        code = rank0.wait(timeout=120)
        waited = time.monotonic() - t0
    finally:
        for proc, logs in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for f in logs:
                f.close()
    err = (tmp_path / "rank0.err").read_text(encoding="utf-8")
    assert code == 3, (tmp_path / "rank0.out").read_text(encoding="utf-8")[-2000:] + err[-3000:]
    assert "rank 1 did not finish the sweep" in err
    if how == "killed":
        assert waited < 60  # noticed when its connections closed, long before the 600 s timeout
    rows = _rows(out / "cohort.csv")
    assert [(r["slide"], r["status"]) for r in rows] == [
        ("s0.tif", "done"), ("s1.tif", "done"), ("s2.tif", "done"), ("stuck.tif", "not done")]
    assert "rank 1 stopped before sweeping it" in rows[3]["error"]
    assert "cohort: 3 done, 0 failed, 1 not done" in (tmp_path / "rank0.out").read_text(encoding="utf-8")


def _descendants(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            continue
        for k in map(int, kids):
            out += [k, *_descendants(k)]
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.timeout(300)
def test_under_torchrun_a_killed_rank_still_leaves_the_cohort_table(tiny_run, slides, tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available() or not os.path.isdir("/proc/self/task"):
        pytest.skip("needs torch.distributed with gloo and Linux /proc")
    _, run_dir = tiny_run
    stuck = tmp_path / "stuck.tif"
    os.mkfifo(stuck)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(os.getcwd()), os.environ.get("PYTHONPATH", "")]))
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "gusa_core.cli",
             *_args(run_dir, [slides[0], slides[1], slides[2], stuck], out, "--backend", "torch")],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_for(lambda: all((out / n / SUMMARY_FILE).is_file() for n in ("s0", "s1", "s2")), 240)
            victim = [p for p in _descendants(proc.pid) if _rank_of(p) == 1]
            assert victim, "rank 1's process not found"
            os.kill(victim[0], signal.SIGKILL)  # rank 1 dies while it waits on the pipe
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = (tmp_path / "log").read_text(encoding="utf-8")
    assert code != 0, text[-3000:]
    rows = _rows(out / "cohort.csv")
    assert [(r["slide"], r["status"]) for r in rows] == [
        ("s0.tif", "done"), ("s1.tif", "done"), ("s2.tif", "done"), ("stuck.tif", "not done")], text[-3000:]
