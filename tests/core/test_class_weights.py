"""class_weights="balanced": scikit-learn's weights, applied to the cross-entropy of training and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from gusa_core.errors import GusaError
from gusa_core.losses import gusa_loss
from gusa_core.models import ModelOutput
from gusa_core.training import TrainCallbacks, TrainConfig, Trainer
from gusa_core.training import fold_trainer
from gusa_core.training.fold_trainer import balanced_class_weights, class_counts

SIZE = (64, 48)


def test_weights_are_scikit_learns_balanced_weights():
    labels = [0] * 9 + [1] * 3 + [2] * 2 + [3] * 1
    want = compute_class_weight("balanced", classes=np.arange(4), y=np.array(labels))
    assert torch.allclose(balanced_class_weights(class_counts(labels, 4)), torch.tensor(want, dtype=torch.float32))


def test_an_absent_class_weighs_one_and_unlabelled_entries_are_ignored():
    labels = [0, 0, 0, 2, -1, -1]
    got = balanced_class_weights(class_counts(labels, 4))
    present = compute_class_weight("balanced", classes=np.array([0, 2]), y=np.array([0, 0, 0, 2]))
    assert torch.allclose(got, torch.tensor([present[0], 1.0, present[1], 1.0], dtype=torch.float32))
    assert torch.equal(balanced_class_weights(class_counts([], 3)), torch.ones(3))


def test_weighted_cross_entropy_is_the_weighted_mean_of_the_terms():
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 0, 0, 1, 2, 3])
    w = torch.tensor([0.5, 1.5, 1.5, 1.5])
    loss, parts = gusa_loss(ModelOutput(logits, None), y, class_weight=w)
    terms = -F.log_softmax(logits, 1)[torch.arange(6), y]
    by_hand = (w[y] * terms).sum() / w[y].sum()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert parts["ce"] == pytest.approx(by_hand.item(), rel=1e-6)
    unweighted, _ = gusa_loss(ModelOutput(logits, None), y)
    assert unweighted.item() == pytest.approx(terms.mean().item(), rel=1e-6)


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(GusaError, match="class_weights"):
        TrainConfig(class_weights="inverse").validate()


class Log(TrainCallbacks):
    def __init__(self):
        self.messages = []

    def on_log(self, message):
        self.messages.append(message)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("setting", ["none", "balanced"])
def test_training_weighs_the_folds_classes(tmp_path, monkeypatch, setting):
    from gusa_core.demo import write_demo_project

    project = write_demo_project(tmp_path / "demo", seed=0, per_class={"Normal": 6, "Benign": 2, "InSitu": 2, "Invasive": 2},
                                 unlabelled=0, size=SIZE)
    seen = []
    real = fold_trainer.gusa_loss

    def spy(*args, **kw):
        if "class_weight" in kw:  # training batches; the validation loss stays unweighted
            seen.append(kw["class_weight"])
        return real(*args, **kw)

    monkeypatch.setattr(fold_trainer, "gusa_loss", spy)
    log = Log()
    out = project.runs_dir / setting
    cfg = TrainConfig(folds=1, epochs=1, batch_size=4, input_size=SIZE, device="cpu", pretrained="none", seed=0,
                      workers=0, class_weights=setting)
    Trainer(project, out, cfg, callbacks=log).run()
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["config"]["class_weights"] == setting
    if setting == "none":
        assert seen and all(w is None for w in seen)
        assert not any("class weights" in m for m in log.messages)
        [hint] = [m for m in log.messages if m.startswith("the classes are uneven")]
        assert "Normal" in hint and "--class-weights balanced" in hint
        return
    labels = {r.id: r.label for r in project.images}
    classes = ["Normal", "Benign", "InSitu", "Invasive"]
    y = np.array([classes.index(labels[i]) for i in meta["splits"][0]["train"]])
    weights = seen[0]
    assert all(torch.equal(w, weights) for w in seen)
    want = compute_class_weight("balanced", classes=np.unique(y), y=y)
    assert torch.allclose(weights[np.unique(y)], torch.tensor(want, dtype=torch.float32))
    assert weights[0] < weights[1]  # Normal, the largest class, weighs least
    assert any(m.startswith("class weights (balanced") and "Normal" in m for m in log.messages)
    assert not any(m.startswith("the classes are uneven") for m in log.messages)


@pytest.mark.usefixtures("one_torch_thread")
def test_no_hint_when_the_classes_are_even(tmp_path):
    from gusa_core.demo import write_demo_project

    project = write_demo_project(tmp_path / "demo", seed=0, per_class=2, unlabelled=0, size=SIZE)
    log = Log()
    cfg = TrainConfig(folds=1, epochs=1, batch_size=4, input_size=SIZE, device="cpu", pretrained="none", seed=0, workers=0)
    Trainer(project, project.runs_dir / "even", cfg, callbacks=log).run()
    assert not any("uneven" in m or "class weights" in m for m in log.messages)
