"""End to end through ``gusa_core.cli.main``: demo -> train -> predict -> evaluate -> export -> info."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gusa_core.cli.main import main  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A demo project and a 2-fold, 1-epoch fa-gusa run on it at 64x48."""
    root = tmp_path_factory.mktemp("e2e")
    project = root / "demo"
    run = root / "run"
    assert main(["demo", str(project), "--per-class", "5", "--size", "256x192"]) == 0
    assert (project / "gusa-project.json").is_file()
    rc = main(["train", str(project), "--out", str(run), "--epochs", "1", "--input-size", "64x48", "--folds", "2",
               "--pretrained", "none", "--batch-size", "8", "--device", "cpu"])
    assert rc == 0
    assert (run / "fold-0" / "model.safetensors").is_file() and (run / "fold-1" / "model.json").is_file()
    return root, project, run


def _read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_predict_csv_and_attention_pngs(trained, capsys):
    from PIL import Image

    root, project, run = trained
    images = sorted((project / "images").iterdir())
    out_csv, att = root / "out.csv", root / "att"
    assert main(["predict", str(run), str(project / "images"), "--csv", str(out_csv), "--attention-dir", str(att)]) == 0
    rows = _read_csv(out_csv)
    assert [r["path"] for r in rows] == [str(p) for p in images]
    classes = [k[5:] for k in rows[0] if k.startswith("prob_")]
    assert classes == ["Normal", "Benign", "InSitu", "Invasive"]
    for r in rows:
        assert r["error"] == ""
        probs = [float(r[f"prob_{c}"]) for c in classes]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert r["predicted"] == classes[int(np.argmax(probs))]
        assert 0.0 <= float(r["roi_fraction"]) <= 1.0
    for p in images:
        png = att / f"{p.stem}_attention.png"
        with Image.open(png) as im:
            assert im.size == Image.open(p).size and im.mode == "RGB"
    printed = capsys.readouterr().out
    assert images[0].name in printed


def test_predict_json_lines(trained, capsys):
    root, project, run = trained
    img = sorted((project / "images").iterdir())[0]
    assert main(["predict", str(run), str(img), "--json", "--fold", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["path"] == str(img)
    assert set(lines[0]) >= {"path", "predicted", "probs", "roi_fraction", "error"}
    assert sum(lines[0]["probs"].values()) == pytest.approx(1.0)


def test_predict_precision_option(trained, capsys, monkeypatch):
    """--precision fp32 is what runs, whatever the CPU or GUSA_PRECISION say, and --json says so."""
    pytest.importorskip("openvino")
    root, project, run = trained
    img = sorted((project / "images").iterdir())[0]
    monkeypatch.setenv("GUSA_PRECISION", "bf16")
    assert main(["predict", str(run), str(img), "--json", "--fold", "1", "--backend", "openvino",
                 "--precision", "fp32"]) == 0
    line = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")][0]
    assert line["engine"]["backend"] == "openvino" and line["engine"]["precision"] == "fp32"
    with pytest.raises(SystemExit):  # argparse refuses a precision it does not know
        main(["predict", str(run), str(img), "--precision", "fp8"])


def test_folder_with_corrupt_and_non_image_files(trained, capsys):
    root, project, run = trained
    folder = root / "mixed"
    folder.mkdir()
    good = sorted((project / "images").iterdir())[:3]
    for p in good:
        shutil.copy(p, folder / p.name)
    (folder / "zz_corrupt.tif").write_bytes(b"II*\x00\x08\x00\x00\x00garbage")
    notes = folder / "notes.txt"
    notes.write_text("not an image")
    out_csv = root / "mixed.csv"
    # the folder lists only image suffixes; the text file is named explicitly
    assert main(["predict", str(run), str(folder), str(notes), "--csv", str(out_csv)]) == 0
    rows = _read_csv(out_csv)
    errors = {r["path"] for r in rows if r["error"]}
    assert errors == {str(folder / "zz_corrupt.tif"), str(notes)}
    assert sum(1 for r in rows if not r["error"] and r["predicted"]) == 3
    err = capsys.readouterr().err
    assert "zz_corrupt.tif" in err and "notes.txt" in err
    # every file failing is a non-zero exit, a missing input an error naming it
    assert main(["predict", str(run), str(notes)]) == 1
    assert main(["predict", str(run), str(root / "missing_dir")]) == 2
    assert "missing_dir" in capsys.readouterr().err


def test_cli_csv_equals_library_csv_and_backends_agree(trained):
    from gusa_core.inference import Predictor, classify_paths, collect_images
    from gusa_core.inference.outputs import write_predictions_csv

    root, project, run = trained
    images = collect_images([project / "images"])[:6]
    cli_csv = root / "cli.csv"
    assert main(["predict", str(run), *map(str, images), "--csv", str(cli_csv)]) == 0
    predictor = Predictor.from_run(run)  # the CLI's default backend
    lib_csv = write_predictions_csv(root / "lib.csv", list(classify_paths(predictor, images)), predictor.class_names)
    assert lib_csv.read_bytes() == cli_csv.read_bytes()
    other = "torch" if predictor.backend != "torch" else "onnxruntime"
    tol = 1e-4 if predictor.engine_info.precision == "fp32" else 0.01  # bf16 passed the agreement gate
    alt = Predictor.from_run(run, backend=other)
    alt_csv = write_predictions_csv(root / "alt.csv", list(classify_paths(alt, images)), alt.class_names)
    a, b = _read_csv(lib_csv), _read_csv(alt_csv)
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for ra, rb in zip(a, b):
        for key in ra:
            if key.startswith("prob_"):
                assert float(ra[key]) == pytest.approx(float(rb[key]), abs=tol)


def test_evaluate_json_and_html(trained):
    root, project, run = trained
    mj, rh = root / "m.json", root / "r.html"
    assert main(["evaluate", str(run), str(project), "--json", str(mj), "--html", str(rh)]) == 0
    m = json.loads(mj.read_text(encoding="utf-8"))
    assert {"accuracy", "auc_macro", "auc_per_class", "confusion", "miou", "roc", "predictions", "misclassified"} <= set(m)
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["auc_macro"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in m["auc_per_class"].values())
    assert m["miou"] is not None and 0.0 <= m["miou"] <= 1.0
    conf = np.array(m["confusion"])
    assert conf.shape == (4, 4) and np.allclose(conf.sum(1), 1.0)
    assert m["n_images"] == 20  # 5 per class
    html = rh.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert main(["evaluate", str(run), str(project), "--validation", "--json", str(mj)]) == 0
    assert json.loads(mj.read_text(encoding="utf-8"))["n_images"] == 20  # each labelled image validated by one fold


def test_export_and_info(trained, capsys):
    import onnx

    root, project, run = trained
    out = root / "m.onnx"
    assert main(["export", str(run), "--onnx", str(out)]) == 0
    model = onnx.load(str(out))
    assert {o.name for o in model.graph.output} >= {"logits", "attention"}
    capsys.readouterr()
    assert main(["info", "--variant", "gusa", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["variant"] == "gusa"
    assert isinstance(info, dict) and len(info) > 3
