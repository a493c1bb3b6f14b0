"""The GuSA model family: shapes, eq. 3, Table I counts, ImageNet weights handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gusa_core.errors import CheckpointError
from gusa_core.models import (
    IMAGENET_WEIGHTS_FILENAME,
    TABLE_I,
    VARIANTS,
    ModelOutput,
    build_model,
    info_dict,
    parameter_counts,
)
from gusa_core.models_registry import ROI_VARIANTS

ROOT = Path(__file__).resolve().parents[2]
H, W = 48, 64


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_every_variant(variant, x):
    torch.manual_seed(0)
    model = build_model(variant)
    assert model.variant == variant and model.num_classes == 4
    assert model.has_roi == (variant in ROI_VARIANTS)
    assert model.pretrained_source == "random"
    out = model(x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 4)
    if model.has_roi:
        assert out.roi.shape == (2, 1, H // 16, W // 16)
        assert float(out.roi.detach().min()) >= 0.0 and float(out.roi.detach().max()) <= 1.0
        loss = out.logits.sum() + out.roi.sum()
    else:
        assert out.roi is None
        loss = out.logits.sum()
    loss.backward()
    assert model.backbone.conv0.weight.grad is not None
    assert torch.isfinite(model.backbone.conv0.weight.grad).all()
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).logits.shape == (1, 4)


def test_input_must_be_multiple_of_16():
    model = build_model("gusa").eval()
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.zeros(1, 3, 40, 64))


def test_checkpoint_keys_are_named_by_role():
    keys = build_model("fa-gusa").state_dict().keys()
    roots = {k.split(".")[0] for k in keys}
    assert roots == {"backbone", "reduce", "aggregate", "roi_head", "classifier"}
    assert "backbone.denseblock3.denselayer32.conv2.weight" in keys
    assert "backbone.transition3.conv.weight" not in keys
    assert {k.split(".")[0] for k in build_model("baseline").state_dict()} == {"backbone", "classifier"}


def _hooked_forward(model, x):
    seen = {}
    hooks = [
        model.classifier.register_forward_hook(lambda m, i, o: seen.update(cls_in=i[0], cls_out=o)),
        model.cam_layer.register_forward_hook(lambda m, i, o: seen.update(bp=o)),
    ]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return out, seen


@pytest.mark.parametrize("variant", ["gusa", "fa-gusa"])
def test_gusa_applies_eq3(variant, x):
    model = build_model(variant).eval()
    out, seen = _hooked_forward(model, x)
    torch.testing.assert_close(seen["cls_in"], seen["bp"] * out.roi)  # A_G^k = A^k · ỹ
    w, b = model.classifier.weight[:, :, 0, 0], model.classifier.bias
    expected = torch.einsum("ck,bkhw->bc", w, seen["bp"] * out.roi) / (H // 16 * W // 16) + b
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)


def test_guroi_logits_do_not_depend_on_roi_head(x):
    model = build_model("guroi").eval()
    out, seen = _hooked_forward(model, x)
    torch.testing.assert_close(seen["cls_in"], seen["bp"])
    with torch.no_grad():
        model.roi_head.weight.mul_(-3.0).add_(1.0)
        model.roi_head.bias.fill_(2.0)
        out2 = model(x)
    torch.testing.assert_close(out.logits, out2.logits)
    assert not torch.allclose(out.roi, out2.roi)


def test_rga_emphasises_residually(x):
    model = build_model("rga").eval()
    out, seen = _hooked_forward(model, x)
    torch.testing.assert_close(seen["cls_in"], seen["bp"] * (1 + out.roi))


def test_table_i_exact_for_gusa_guroi_and_baseline():
    for variant in ("gusa", "guroi"):
        counts = parameter_counts(build_model(variant))
        assert counts["parameters_with_bn_stats"] == 6_483_013 == TABLE_I[variant]
        assert counts["parameters"] == 6_407_813
    assert parameter_counts(build_model("baseline"))["parameters_without_bn"] == 12_332_740


@pytest.mark.parametrize(
    "variant, residual, counting",
    [
        ("gusa", 0, "parameters_with_bn_stats"),
        ("baseline", 0, "parameters_without_bn"),
        ("fa", -2052, "parameters_without_bn"),
        ("fa-gusa", -3591, "parameters_without_bn"),
        ("rga", -3591, "parameters_without_bn"),
        ("attention-gate", 167_688, "parameters_without_bn"),
    ],
)
def test_info_dict_reports_table_i_residual(variant, residual, counting):
    info = info_dict(variant)
    assert info["table_i_residual"] == residual
    assert info["table_i_residual_counting"] == counting
    assert info[counting] - info["table_i"] == residual
    assert info["input_size"] == [512, 384]


def test_info_dict_shapes_and_flops():
    info = info_dict("fa-gusa")
    assert info["bp_shape"] == [512, 24, 32] and info["stride"] == 16
    assert info["has_roi"] and info["attention_kind"] == "roi"
    assert 24.0 < info["gflops"] < 26.0  # PERF.md: 24.9 GFLOP per image
    assert info_dict("baseline", input_size=(256, 192))["bp_shape"] == [1664, 6, 8]
    with pytest.raises(ValueError):
        info_dict("nope")


def test_cli_info_json():
    proc = subprocess.run(
        [sys.executable, "-m", "gusa_core.cli", "info", "--variant", "gusa", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0 and "No module named gusa_core.cli.__main__" in proc.stderr:
        pytest.skip("gusa_core.cli is not runnable with -m")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    for key in ("variant", "parameters", "parameters_with_bn_stats", "parameters_without_bn", "table_i",
                "table_i_residual", "bp_shape", "gflops"):
        assert key in info
    assert info["table_i_residual"] == 0


# --- ImageNet weights: fake files made from a random torchvision DenseNet-169, never downloaded


@pytest.fixture(scope="module")
def fake_state():
    from torchvision.models import densenet169

    torch.manual_seed(1)
    return densenet169(weights=None).state_dict()


def _old_pattern(state):
    import re

    out = {}  # as torchvision's original files: old names, no num_batches_tracked
    for k, v in state.items():
        if k.endswith("num_batches_tracked"):
            continue
        out[re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k)] = v
    return out


def _assert_trunk_equals(model, state):
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(value, state[f"features.{key}"])


def test_pretrained_from_pth_and_old_key_pattern(tmp_path, fake_state):
    path = tmp_path / "dn169.pth"
    torch.save(fake_state, path)
    model = build_model("gusa", pretrained=path)
    _assert_trunk_equals(model, fake_state)
    assert model.pretrained_source == f"file:{path}"

    old = _old_pattern(fake_state)
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    old_path = tmp_path / "old.pth"
    torch.save(old, old_path)
    _assert_trunk_equals(build_model("baseline", pretrained=old_path), fake_state)


def test_pretrained_from_safetensors(tmp_path, fake_state):
    from safetensors.torch import save_file

    path = tmp_path / "dn169.safetensors"
    save_file({k: v.contiguous() for k, v in fake_state.items()}, str(path))
    _assert_trunk_equals(build_model("fa-gusa", pretrained=path), fake_state)


def test_pretrained_auto_finds_torch_hub_cache(tmp_path, monkeypatch, fake_state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="not found at .*densenet169-b2777c0a.pth"):
        model = build_model("gusa", pretrained="auto")
    assert model.pretrained_source == "random"

    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(fake_state, cache / IMAGENET_WEIGHTS_FILENAME)
    model = build_model("gusa", pretrained="auto")
    assert model.pretrained_source == f"imagenet:{cache / IMAGENET_WEIGHTS_FILENAME}"
    _assert_trunk_equals(model, fake_state)


def test_bad_weights_files_raise_checkpoint_error(tmp_path, fake_state):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        build_model("gusa", pretrained=empty)
    assert err.value.path == str(empty)

    with pytest.raises(CheckpointError, match="no such file"):
        build_model("gusa", pretrained=tmp_path / "missing.pth")

    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in fake_state.items() if "denseblock3" not in k}, partial)
    with pytest.raises(CheckpointError, match="trunk tensors missing"):
        build_model("gusa", pretrained=partial)

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)  # noqa: S614 - written by the test itself
    with pytest.raises(CheckpointError):
        build_model("gusa", pretrained=evil)
