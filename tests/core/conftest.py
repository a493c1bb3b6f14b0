"""Fixtures of the core tests (no Qt here)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: the machine is shared, and equal thread counts keep runs bit-identical."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def export_random_fa_gusa(tmp_path_factory):
    """``make(batch, size=(64, 48))``: a random ``fa-gusa`` (seed 0) exported to ONNX at ``size`` (W, H), and its
    torch outputs on ``batch`` standard-normal inputs (seed 1), the oracle of the engine tests:
    ``(onnx_path, inputs, logits, roi)``."""

    def make(batch: int, size=(64, 48)):
        import numpy as np

        torch = pytest.importorskip("torch")
        from gusa_core.inference.export import export_model_onnx
        from gusa_core.models import build_model

        w, h = size
        torch.manual_seed(0)
        model = build_model("fa-gusa").eval()
        folder = tmp_path_factory.mktemp("fold-0")
        path = export_model_onnx(model, folder / "model.onnx", input_size=(w, h))
        x = np.random.default_rng(1).standard_normal((batch, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            out = model(torch.from_numpy(x))
        return path, x, out.logits.numpy(), out.roi.numpy()

    return make
