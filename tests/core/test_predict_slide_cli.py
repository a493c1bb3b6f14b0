"""``gusa predict-slide`` with a trained run: outputs, failures, resume, and two processes under torchrun."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from slide_fixtures import TissuePainter, write_pyramid_tiff

from gusa_core.cli.main import main
from gusa_core.inference.slide_cohort import collect_slides, iter_cohort
from gusa_core.inference.slide_outputs import SUMMARY_FILE

# a BACH field is 256 x 192 level-0 pixels at 3.36 µm/px: small slides, few fields
MPP = 3.36


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    for i, (w, h) in enumerate([(1024, 768), (1280, 640), (768, 768)]):
        write_pyramid_tiff(folder / f"s{i}.tif", w, h, painter=TissuePainter(w, h, seed=i, n_blobs=3, size=0.3),
                           mpp=MPP, levels=[1, 4], tile=256)
    (folder / "broken.svs").write_bytes(b"not a slide at all")
    return folder


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _args(run_dir, cohort, out):
    return ["predict-slide", str(run_dir), str(cohort), "--out", str(out), "--batch-size", "4", "--no-tiff"]


def test_cohort_outputs_failure_and_resume(tiny_run, cohort, tmp_path, capsys):
    _, run_dir = tiny_run
    out = tmp_path / "out"
    slides = collect_slides([cohort])
    assert [s.name for s in slides] == ["broken.svs", "s0.tif", "s1.tif", "s2.tif"]
    # a run killed after its first good slide: that slide's summary exists, the others do not
    from gusa_core.inference import Predictor

    predictor = Predictor.from_run(run_dir, device="cpu")
    for rec in iter_cohort(predictor, slides, out, tiff=False):
        if rec["stage"] == "done":
            break
    first = out / "s0" / SUMMARY_FILE
    assert first.is_file() and not (out / "s1" / SUMMARY_FILE).exists()
    (out / "s1").mkdir()
    (out / "s1" / "heatmap_Normal.png").write_bytes(b"half-written")  # killed mid-slide: redone
    stamp = first.stat().st_mtime_ns

    assert main(_args(run_dir, cohort, out)) == 0
    text = capsys.readouterr().out
    assert "s0.tif: already done, skipped" in text and "broken.svs: FAILED" in text
    assert "BACH" in text  # a run trained on patch images says which field it assumed
    assert first.stat().st_mtime_ns == stamp
    rows = _rows(out / "cohort.csv")
    assert [r["slide"] for r in rows] == ["broken.svs", "s0.tif", "s1.tif", "s2.tif"]
    assert rows[0]["status"] == "failed" and "broken.svs" in rows[0]["error"]
    assert all(r["status"] == "done" and int(r["fields"]) > 0 for r in rows[1:])
    for name in ("s0", "s1", "s2"):
        for f in ("fields.geojson", "fields.csv", "attention.png", "heatmap_Invasive.png", SUMMARY_FILE):
            assert (out / name / f).is_file()
        assert (out / name / "heatmap_Normal.png").read_bytes()[:4] == b"\x89PNG"
    field_rows = _rows(out / "s1" / "fields.csv")
    assert len(field_rows) == int(rows[2]["fields"])
    # a second run redoes nothing and writes the same table
    before = (out / "cohort.csv").read_text(encoding="utf-8")
    stamps = {n: (out / n / SUMMARY_FILE).stat().st_mtime_ns for n in ("s0", "s1", "s2")}
    assert main(_args(run_dir, cohort, out)) == 0
    assert capsys.readouterr().out.count("already done, skipped") == 3
    assert {n: (out / n / SUMMARY_FILE).stat().st_mtime_ns for n in stamps} == stamps
    assert (out / "cohort.csv").read_text(encoding="utf-8") == before


@pytest.mark.timeout(300)
def test_two_processes_under_torchrun_write_the_same_cohort(tiny_run, cohort, tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    _, run_dir = tiny_run
    one = tmp_path / "one"
    assert main(_args(run_dir, cohort, one)) == 0  # also caches the ONNX export the ranks share
    two = tmp_path / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(os.getcwd()), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "gusa_core.cli", *_args(run_dir, cohort, two)],
        capture_output=True, text=True, timeout=280, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[rank 0/2]" in proc.stdout and "[rank 1/2]" in proc.stdout
    assert (two / "cohort.csv").read_text(encoding="utf-8") == (one / "cohort.csv").read_text(encoding="utf-8")
    for name in ("s0", "s1", "s2"):
        assert (two / name / "fields.csv").read_text(encoding="utf-8") == (one / name / "fields.csv").read_text(encoding="utf-8")
