"""Models that cannot be trusted are refused, with a message naming the file; nothing else changes."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from _models import CLASSES, SIZE, edit_json, tiny_images, untrained_run
from _snapshot import outside_snapshot  # noqa: F401 - a fixture

from gusa_core.checkpoint import MODEL_FILE, META_FILE, load_model, read_model_meta, save_model, weights_sha256
from gusa_core.errors import CheckpointError, ModelOutputError
from gusa_core.inference import Predictor

pytestmark = pytest.mark.usefixtures("outside_snapshot", "one_torch_thread")


@pytest.fixture(scope="module")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def model_dir(tmp_path):
    return untrained_run(tmp_path / "run") / "fold-0"


def _flip_a_weight_byte(path):
    """Flip one bit in the tensor data (after the header): a damaged but well-formed file."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + (len(data) - header) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_model_json_records_the_weights_hash(model_dir):
    meta = read_model_meta(model_dir)
    assert meta["weights_sha256"] == weights_sha256(model_dir)
    import hashlib

    assert meta["weights_sha256"] == hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest()


def test_tampered_weights_are_refused(model_dir):
    _flip_a_weight_byte(model_dir / MODEL_FILE)
    with pytest.raises(CheckpointError, match="do not match the SHA-256 recorded in model.json") as info:
        load_model(model_dir)
    assert info.value.path == str(model_dir / MODEL_FILE)
    assert "restore" in str(info.value)


def test_weights_of_another_model_are_refused(tmp_path):
    a = untrained_run(tmp_path / "a", seed=1) / "fold-0"
    b = untrained_run(tmp_path / "b", seed=2) / "fold-0"
    shutil.copy2(b / MODEL_FILE, a / MODEL_FILE)  # same variant, classes and settings: only the hash tells
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_model(a)


def test_model_json_without_hash_is_accepted(model_dir):
    """Decision: a model.json written before the hash existed loads (embedded settings still compared), unchanged."""
    meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    del meta["weights_sha256"]
    (model_dir / META_FILE).write_text(json.dumps(meta))
    before = (model_dir / META_FILE).read_bytes()
    model, loaded = load_model(model_dir)
    assert "weights_sha256" not in loaded and loaded["class_names"] == CLASSES
    assert (model_dir / META_FILE).read_bytes() == before


@pytest.mark.parametrize(
    "key, value",
    [("input_size", [128, 96]), ("mean", [0.5, 0.5, 0.5]), ("std", [0.2, 0.2, 0.2]),
     ("reinhard", {"method": "reinhard", "mean": [50.0, 0.0, 0.0], "std": [10.0, 5.0, 5.0]})],
)
def test_settings_disagreeing_with_the_weights_are_refused(model_dir, key, value):
    edit_json(model_dir / META_FILE, **{key: value})
    with pytest.raises(CheckpointError, match=f"settings and weights disagree: {key}") as info:
        load_model(model_dir)
    assert str(model_dir / MODEL_FILE) in str(info.value) and META_FILE in str(info.value)


@pytest.mark.parametrize(
    "key, value, words",
    [("input_size", "abc", "input_size must be"), ("input_size", [64], "input_size must be"),
     ("input_size", [100000, 100000], "input_size must be"), ("mean", [0.1, "x", 0.2], "mean must be"),
     ("std", [0.2, 0.0, 0.2], "std must be"), ("reinhard", {"method": "reinhard", "mean": "broken"}, "reinhard"),
     ("weights_sha256", "not-a-hash", "weights_sha256")],
)
def test_garbage_in_model_json_is_refused_naming_it(model_dir, key, value, words):
    edit_json(model_dir / META_FILE, **{key: value})
    with pytest.raises(CheckpointError, match=words) as info:
        read_model_meta(model_dir)
    assert info.value.path == str(model_dir / META_FILE)


def test_nan_weights_are_refused(tmp_path):
    from gusa_core.models import build_model

    model = build_model("gusa", num_classes=4, pretrained="none").eval()
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    folder = save_model(tmp_path / "m", model, {"variant": "gusa", "class_names": CLASSES, "input_size": list(SIZE)})
    with pytest.raises(CheckpointError, match="NaN or infinite") as info:
        load_model(folder)
    assert info.value.path == str(folder / MODEL_FILE)


def test_non_finite_probabilities_are_an_error_not_a_prediction(model_dir, tmp_path):
    """Finite weights that overflow: the logits are infinite, the softmax NaN. No label comes out."""
    model, meta = load_model(model_dir)
    with torch.no_grad():
        model.classifier.weight.fill_(3e38)
    predictor = Predictor([(model, meta)], device="cpu", backend="torch", folders=[model_dir])
    image = np.full((48, 64, 3), 200, np.uint8)
    with pytest.raises(ModelOutputError, match="NaN or infinite probabilities") as info:
        predictor.predict_image(image)
    assert info.value.path == str(model_dir / MODEL_FILE)


def test_onnx_cache_follows_the_weights_hash_not_their_mtime(tmp_path):
    """Restoring older weights with ``cp -p`` (older mtime) must not serve the newer model's ONNX export."""
    folder = tmp_path / "model"
    old = untrained_run(tmp_path / "old", seed=1) / "fold-0"
    new = untrained_run(tmp_path / "new", seed=2) / "fold-0"
    shutil.copytree(new, folder)
    first = Predictor.from_run(folder, device="cpu", backend="onnx")
    assert first.backend == "onnxruntime" and (folder / "model.onnx").is_file()
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    os.utime(old / MODEL_FILE, ns=(stamp - 10**9, stamp - 10**9))  # the restored weights look older
    for name in (MODEL_FILE, META_FILE):
        shutil.copy2(old / name, folder / name)  # cp -p
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    served = Predictor.from_run(folder, device="cpu", backend="onnx").predict_image(image)
    truth = Predictor.from_run(old, device="cpu", backend="torch").predict_image(image)
    np.testing.assert_allclose(served.probs, truth.probs, atol=1e-4)
    record = json.loads((folder / "model.onnx.json").read_text(encoding="utf-8"))
    assert record["weights_sha256"] == weights_sha256(folder) == read_model_meta(folder)["weights_sha256"]


def test_weights_hash_is_cached_but_sees_a_cp_p_in_place(tmp_path):
    path = tmp_path / MODEL_FILE
    path.write_bytes(b"a" * 1000)
    first = weights_sha256(tmp_path)
    st = path.stat()
    with open(path, "r+b") as f:  # same inode, same size, then the old mtime put back (as cp -p does)
        f.write(b"b" * 1000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime_ns == st.st_mtime_ns
    assert weights_sha256(tmp_path) != first


def test_predict_cli_refuses_tampered_weights_in_one_line(model_dir, tmp_path, capsys):
    from gusa_core.cli.main import main

    _flip_a_weight_byte(model_dir / MODEL_FILE)
    images = tiny_images(tmp_path / "images")
    assert main(["predict", str(model_dir), *map(str, images), "--json"]) == 2
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [{"error": lines[0]["error"], "exit_status": 2}] and "SHA-256" in lines[0]["error"]
    assert err.count("\n") == 1 and str(model_dir / MODEL_FILE) in err and "Traceback" not in err
