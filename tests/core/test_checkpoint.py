"""Model files: safetensors + JSON round trip, refusal of corrupt files, resume state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gusa_core.checkpoint import (
    META_FILE,
    MODEL_FILE,
    load_model,
    load_state,
    read_model_meta,
    save_model,
    save_state,
)
from gusa_core.errors import CheckpointError
from gusa_core.models import build_model

CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("gusa", num_classes=4, pretrained="none").eval()
    folder = tmp_path_factory.mktemp("ckpt") / "fold-0"
    meta = {"variant": "gusa", "class_names": CLASSES, "input_size": [64, 48], "fold": 0, "history": [{"epoch": 1}]}
    save_model(folder, model, meta)
    return model, folder


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in (MODEL_FILE, META_FILE):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_round_trip_gives_identical_outputs(saved):
    model, folder = saved
    assert (folder / MODEL_FILE).is_file() and (folder / META_FILE).is_file()
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    loaded, meta = load_model(folder, device="cpu")
    assert meta["format"] == "gusa-model" and meta["format_version"] == 1
    assert meta["variant"] == "gusa" and meta["class_names"] == CLASSES and meta["input_size"] == [64, 48]
    assert set(meta["tensors"]) == set(model.state_dict())
    assert not loaded.training
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.roi, b.roi)
    for name in (MODEL_FILE, META_FILE):  # either file names the model
        assert load_model(folder / name)[1]["variant"] == "gusa"


def test_weights_carry_their_own_description(saved):
    from safetensors import safe_open

    _, folder = saved
    with safe_open(str(folder / MODEL_FILE), framework="pt") as f:
        embedded = json.loads(f.metadata()["gusa_meta"])
    assert embedded["variant"] == "gusa" and embedded["class_names"] == CLASSES and embedded["input_size"] == [64, 48]


def test_truncated_weights_are_refused(saved, tmp_path):
    folder = _copy(saved[1], tmp_path / "m")
    data = (folder / MODEL_FILE).read_bytes()
    (folder / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file") as info:
        load_model(folder)
    assert info.value.path == str(folder / MODEL_FILE)
    (folder / MODEL_FILE).write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_model(folder)


def _edit_json(folder: Path, **changes) -> None:
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    meta.update(changes)
    (folder / META_FILE).write_text(json.dumps(meta))


def test_wrong_variant_in_json_is_refused(saved, tmp_path):
    folder = _copy(saved[1], tmp_path / "m")
    _edit_json(folder, variant="fa-gusa")
    with pytest.raises(CheckpointError, match="settings and weights disagree") as info:
        load_model(folder)
    assert info.value.path == str(folder / MODEL_FILE)
    _edit_json(folder, variant="resnet-50")
    with pytest.raises(CheckpointError, match="unknown variant") as info:
        load_model(folder)
    assert info.value.path == str(folder / META_FILE)


def test_class_names_disagreeing_with_weights_are_refused(saved, tmp_path):
    folder = _copy(saved[1], tmp_path / "m")
    _edit_json(folder, class_names=["A", "B", "C", "D"])
    with pytest.raises(CheckpointError, match="settings and weights disagree"):
        load_model(folder)


def test_shape_mismatch_is_refused_and_listed(saved, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = _copy(saved[1], tmp_path / "m")
    with safe_open(str(folder / MODEL_FILE), framework="pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["classifier.weight"] = torch.zeros(5, 512, 1, 1)
    del tensors["roi_head.bias"]
    save_file(tensors, str(folder / MODEL_FILE), metadata=header)
    with pytest.raises(CheckpointError) as info:
        load_model(folder)
    msg = str(info.value)
    assert info.value.path == str(folder / MODEL_FILE)
    assert "classifier.weight" in msg and "[5, 512, 1, 1]" in msg and "missing roi_head.bias" in msg


def test_missing_files_bad_json_and_versions(saved, tmp_path):
    folder = _copy(saved[1], tmp_path / "m")
    (folder / META_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON") as info:
        load_model(folder)
    assert info.value.path == str(folder / META_FILE)
    _copy(saved[1], tmp_path / "v")
    _edit_json(tmp_path / "v", format_version=99)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_model(tmp_path / "v")
    _copy(saved[1], tmp_path / "f")
    _edit_json(tmp_path / "f", format="pytorch")
    with pytest.raises(CheckpointError, match="not a GuSA model"):
        read_model_meta(tmp_path / "f")
    (tmp_path / "v" / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_model(tmp_path / "v")
    assert info.value.path == str(tmp_path / "v" / MODEL_FILE)
    (tmp_path / "f" / META_FILE).unlink()
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_model(tmp_path / "f")
    assert info.value.path == str(tmp_path / "f" / META_FILE)
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "nowhere")


def test_no_pickle_anywhere_in_the_loader():
    import inspect

    import gusa_core.checkpoint as ck

    src = inspect.getsource(ck)
    assert "torch.load" not in src and "pickle" not in src.replace("no pickle", "").replace("unpickle", "")


def test_resume_state_round_trip(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 3)).sum().backward()
        opt.step()
        sched.step()
    state = {"epoch": 2, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "model": net.state_dict(), "history": [{"a": 1.5, "b": None}], "nan": float("nan")}
    save_state(tmp_path / "s", state)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["state.json", "state.safetensors"]
    back = load_state(tmp_path / "s")
    assert back["epoch"] == 2 and back["history"] == [{"a": 1.5, "b": None}] and back["nan"] != back["nan"]
    opt2 = torch.optim.Adam(net.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for k, v in opt.state_dict()["state"].items():
        for name, t in v.items():
            assert torch.equal(opt2.state_dict()["state"][k][name], t)
    assert back["scheduler"] == sched.state_dict()
    # a crash between the two files is detected
    save_state(tmp_path / "t", {"epoch": 3, "w": torch.ones(2)})
    (tmp_path / "s" / "state.safetensors").write_bytes((tmp_path / "t" / "state.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_state(tmp_path / "s")
