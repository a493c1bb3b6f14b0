"""The predictor's CPU engines: backend names, the agreement gate at the Predictor, prediction without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gusa_core import engines  # noqa: E402
from gusa_core.demo import write_demo_project  # noqa: E402
from gusa_core.engines.agreement import RECORD_NAME, load_records  # noqa: E402
from gusa_core.errors import GusaError  # noqa: E402
from gusa_core.inference import Predictor  # noqa: E402
from gusa_core.inference.backends import export_is_fresh, normalize_backend  # noqa: E402
from gusa_core.runs import runs_dir, write_untrained_run  # noqa: E402

SIZE = (64, 48)
CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    monkeypatch.delenv(engines.ENGINE_ENV, raising=False)
    monkeypatch.delenv(engines.PRECISION_ENV, raising=False)


def _run(folder, *, seed=3, validation_ids=None):
    write_untrained_run(folder, variant="fa-gusa", class_names=CLASSES, input_size=SIZE, folds=1, seed=seed,
                        validation_ids=validation_ids)
    return folder


def _images(n=3):
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, size=(40 + 9 * i, 70, 3), dtype=np.uint8) for i in range(n)]


# ------------------------------------------------------------------ no torch
def test_prediction_needs_no_torch_once_the_export_is_cached(tmp_path):
    run = _run(tmp_path / "run")
    images = np.stack([im[:40] for im in _images()])
    reference = Predictor.from_run(run, backend="torch").predict(list(images))
    Predictor.from_run(run, backend="onnxruntime")  # exports model.onnx (with torch, here)
    assert export_is_fresh(run / "fold-0")
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["torch"] = None  # any import of torch now raises
        import numpy as np
        from gusa_core.inference import Predictor
        images = list(np.load({str(tmp_path / "images.npy")!r}))
        out = {{}}
        for backend in ("auto", "onnxruntime", "openvino"):
            p = Predictor.from_run({str(run)!r}, backend=backend)
            out[backend] = {{"probs": [pr.probs.tolist() for pr in p.predict(images)],
                            "maps": [pr.attention_lowres.tolist() for pr in p.predict(images)],
                            "engine": p.engine_info.as_dict(), "device": str(p.device)}}
        assert not [m for m in sys.modules if m.startswith("torch") and sys.modules[m] is not None]
        import os
        from gusa_core.errors import GusaError
        os.remove({str(run / "fold-0" / "model.onnx")!r})
        try:
            Predictor.from_run({str(run)!r})
        except GusaError as exc:  # no export and no torch: said in words, not a traceback
            out["missing"] = str(exc)
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, GUSA_PRECISION="auto"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "torch is not installed" in out.pop("missing")
    expected = np.array([p.probs for p in reference])
    maps = np.array([p.attention_lowres for p in reference])
    for backend, got in out.items():
        assert got["device"] == "cpu"
        assert got["engine"]["backend"] == ("openvino" if backend == "auto" else backend)
        tol = 1e-4 if got["engine"]["precision"] == "fp32" else 0.01  # bf16 passed the agreement gate
        np.testing.assert_allclose(got["probs"], expected, atol=tol)
        np.testing.assert_allclose(got["maps"], maps, atol=10 * tol)


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("given, name", [(None, "auto"), ("AUTO", "auto"), ("onnx", "onnxruntime"),
                                          ("onnxruntime", "onnxruntime"), ("openvino", "openvino"),
                                          ("torch", "torch")])
def test_backend_names(given, name):
    assert normalize_backend(given) == name


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(GusaError, match="not understood"):
        Predictor.from_run(_run(tmp_path / "run"), backend="tensorrt")


def test_each_backend_reports_what_runs_and_why(tmp_path):
    run = _run(tmp_path / "run")
    torch_p = Predictor.from_run(run, backend="torch")
    assert torch_p.backend == "torch" and torch_p.engine_info.reason == "torch asked for"
    ort = Predictor.from_run(run, backend="onnx")
    assert (ort.backend, ort.engine_info.precision) == ("onnxruntime", "fp32")
    assert "onnxruntime asked for" in ort.engine_info.reason
    for a, b in zip(torch_p.predict(_images()), ort.predict(_images())):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
        np.testing.assert_allclose(a.attention, b.attention, atol=1e-4)


# ------------------------------------------------------------------ the agreement gate, at the Predictor
class _Shifted:
    """An engine that claims bf16 and moves the logits of a real fp32 OpenVINO engine by ``shift``."""

    def __init__(self, inner, shift):
        self.inner, self.shift = inner, np.asarray(shift, np.float32)
        self.name, self.precision, self.reason = "openvino", "bf16", "bf16 (test)"
        self.version, self.device_name, self.output_names = inner.version, inner.device_name, inner.output_names
        self.calls = 0

    def run(self, batch):
        self.calls += 1
        out = dict(self.inner.run(batch))
        out["logits"] = out["logits"] + self.shift
        return out

    __call__ = run


def _fake_bf16(monkeypatch, shift):
    real = engines.create_engine
    made = []

    def create(name, onnx_path, *, precision="auto", threads=None, cache_dir=None):
        engine = real(name, onnx_path, precision="fp32", threads=threads, cache_dir=cache_dir)
        if precision == "auto":
            engine = _Shifted(engine, shift)
        made.append((precision, engine))
        return engine

    monkeypatch.setattr(engines, "create_engine", create)
    return made


def test_predictor_falls_back_to_fp32_when_bf16_disagrees(tmp_path, monkeypatch):
    run = _run(tmp_path / "run")
    reference = Predictor.from_run(run, backend="onnxruntime").predict(_images())
    made = _fake_bf16(monkeypatch, [8.0, 0.0, 0.0, 0.0])  # class 0 wins everywhere: top-1 flips
    p = Predictor.from_run(run, backend="auto")
    info = p.engine_info
    assert (info.backend, info.precision) == ("openvino", "fp32")
    assert "disagrees with fp32" in info.reason and "top-1 differs" in info.reason
    assert "generated tissue" in info.reason  # no project at hand: said so
    for a, b in zip(reference, p.predict(_images())):  # the fp32 engine predicts, not the shifted one
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
    record = load_records(run / "fold-0" / RECORD_NAME)["openvino/bf16"]
    assert not record.ok and info.reason.startswith(record.reason) and info.mode in info.reason
    # the verdict is stored: the next start builds the candidate only to read its name, and checks nothing
    made.clear()
    again = Predictor.from_run(run, backend="openvino")
    assert again.engine_info.precision == "fp32" and "disagrees" in again.engine_info.reason
    assert [e.calls for prec, e in made if prec == "auto"] == [0]


def test_predictor_keeps_bf16_that_agrees_on_the_runs_validation_images(tmp_path, monkeypatch):
    project = tmp_path / "project"
    write_demo_project(project, per_class=2, unlabelled=0, size=(96, 72))
    ids = sorted(p.stem for p in (project / "images").rglob("*.png"))[:5]
    run = _run(runs_dir(project) / "r1", validation_ids=[ids])
    _fake_bf16(monkeypatch, [1e-4, 0.0, 0.0, 0.0])
    p = Predictor.from_run(run)
    assert (p.engine_info.backend, p.engine_info.precision) == ("openvino", "bf16")
    assert "agrees with fp32" in p.engine_info.reason
    assert "validation images of the run" in p.engine_info.reason
    assert len(p.predict(_images(2))) == 2


def test_predict_json_names_the_engine_and_why(tmp_path, capsys):
    import cv2

    from gusa_core.cli.main import main

    run = _run(tmp_path / "run")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), _images(1)[0][:, :, ::-1])
    assert main(["predict", str(run), str(image), "--json", "--backend", "onnxruntime"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["engine"]["backend"] == "onnxruntime" and record["engine"]["precision"] == "fp32"
    assert "onnxruntime asked for" in record["engine"]["reason"]
