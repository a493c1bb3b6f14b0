"""ONNX export: onnxruntime reproduces the torch model's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gusa_core.errors import CheckpointError
from gusa_core.inference.export import OnnxModel, export_model_onnx
from gusa_core.inference.gradcam import grad_cam
from gusa_core.models import build_model

H, W = 48, 64


def _randomise_bn(model):
    # non-trivial running statistics, so eval-mode BN is really exercised
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def test_fa_gusa_onnx_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = _randomise_bn(build_model("fa-gusa"))
    path = export_model_onnx(model, tmp_path / "m.onnx", input_size=(W, H))
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    onnx_model = OnnxModel(path, threads=1)
    assert onnx_model.output_names == ["logits", "attention"]
    x = torch.randn(3, 3, H, W)  # batch 3 through a graph traced at batch 1
    with torch.no_grad():
        expected = model(x)
    got = onnx_model(x.numpy())
    np.testing.assert_allclose(got["logits"], expected.logits.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["attention"], expected.roi.numpy(), atol=1e-4)


def test_baseline_onnx_attention_is_grad_cam_of_predicted_class(tmp_path):
    torch.manual_seed(0)
    model = _randomise_bn(build_model("baseline"))
    h, w = 64, 96
    onnx_model = OnnxModel(export_model_onnx(model, tmp_path / "b.onnx", input_size=(w, h)), threads=1)
    assert onnx_model.output_names == ["logits", "attention", "cam"]
    x = torch.randn(2, 3, h, w)
    got = onnx_model(x)
    with torch.no_grad():
        logits = model(x).logits
    np.testing.assert_allclose(got["logits"], logits.numpy(), atol=1e-4, rtol=1e-4)
    assert got["attention"].shape == (2, 1, 2, 3) and got["cam"].shape == (2, 4, 2, 3)
    np.testing.assert_allclose(got["attention"][:, 0], grad_cam(model, x).numpy(), atol=1e-4)
    np.testing.assert_allclose(got["cam"][:, 1], grad_cam(model, x, class_idx=1).numpy(), atol=1e-4)


def test_onnx_model_rejects_a_bad_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(CheckpointError) as err:
        OnnxModel(bad)
    assert err.value.path == str(bad)


def test_export_onnx_from_a_run_folder(tmp_path):
    from gusa_core.checkpoint import save_model
    from gusa_core.inference.export import export_onnx

    torch.manual_seed(0)
    model = _randomise_bn(build_model("fa"))
    meta = {"variant": "fa", "class_names": ["a", "b", "c", "d"], "input_size": [W, H]}
    save_model(tmp_path / "run" / "fold-0", model, meta)
    path = export_onnx(tmp_path / "run", tmp_path / "fa.onnx", fold=0)
    x = torch.randn(1, 3, H, W)
    got = OnnxModel(path, threads=1)(x)
    with torch.no_grad():
        np.testing.assert_allclose(got["logits"], model(x).logits.numpy(), atol=1e-4, rtol=1e-4)
