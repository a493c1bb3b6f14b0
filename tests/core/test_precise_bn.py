"""Precise BatchNorm: a run from random weights keeps the statistics of its training images, not stale averages."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from gusa_core.checkpoint import load_model
from gusa_core.data import ProjectDataset
from gusa_core.demo import write_demo_project
from gusa_core.runs import last_model_dir
from gusa_core.stain import ReinhardNormalizer
from gusa_core.training import TrainCallbacks, TrainConfig, Trainer


class _Log(TrainCallbacks):
    def __init__(self):
        self.lines = []

    def on_log(self, message):
        self.lines.append(message)


def _bn_buffers(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}


def test_running_statistics_are_those_of_the_training_images(tmp_path, one_torch_thread):
    project = write_demo_project(tmp_path / "demo", seed=2, per_class=3, unlabelled=0, size=(64, 48))
    config = TrainConfig(variant="fa-gusa", folds=1, epochs=1, batch_size=4, input_size=(32, 32), lr=1e-3,
                         pretrained="none", seed=0, workers=0, device="cpu", precision="fp32")
    log = _Log()
    Trainer(project, tmp_path / "run", config, callbacks=log).run()
    assert any("precise_bn" in line for line in log.lines)  # on by default for random weights
    model, meta = load_model(last_model_dir(tmp_path / "run" / "fold-0"))
    saved = _bn_buffers(model)
    # the oracle: torch's own re-estimation (SWA's update_bn) over the same un-augmented images
    ds = ProjectDataset(project, meta["train_ids"], input_size=(32, 32),
                        normalizer=ReinhardNormalizer.from_dict(meta["reinhard"]))
    torch.optim.swa_utils.update_bn(DataLoader(ds, batch_size=4, shuffle=False), model)
    expected = _bn_buffers(model)
    assert saved.keys() == expected.keys() and len(saved) > 100
    for k in saved:
        torch.testing.assert_close(saved[k], expected[k], rtol=1e-4, atol=1e-5, msg=k)
