"""Training end to end at 64x48 with random weights: callbacks, stop, resume, repeatability, failure, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from gusa_core.checkpoint import load_model
from gusa_core.runs import Run
from gusa_core.errors import GusaError
from gusa_core.training import TrainCallbacks, TrainConfig, Trainer

SIZE = (64, 48)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("train") / "demo", seed=0, per_class=3, unlabelled=1, size=SIZE)


def _config(**kw) -> TrainConfig:
    base = dict(folds=1, epochs=2, batch_size=3, input_size=SIZE, device="cpu", pretrained="none", seed=0, workers=0)
    base.update(kw)
    return TrainConfig(**base)


class Recorder(TrainCallbacks):
    def __init__(self):
        self.events = []

    def on_run_start(self, info):
        self.events.append(("run_start", info))

    def on_fold_start(self, fold, folds):
        self.events.append(("fold_start", (fold, folds)))

    def on_batch_end(self, rec):
        self.events.append(("batch", rec))

    def on_epoch_end(self, rec):
        self.events.append(("epoch", rec))

    def on_fold_end(self, fold, metrics):
        self.events.append(("fold_end", (fold, metrics)))

    def on_log(self, message):
        self.events.append(("log", message))

    def on_run_end(self, summary):
        self.events.append(("run_end", summary))

    def of(self, kind):
        return [v for k, v in self.events if k == kind]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _assert_same_weights(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def uninterrupted(project):
    out = project.runs_dir / "uninterrupted"
    summary = Trainer(project, out, _config()).run()
    assert summary["status"] == "finished"
    return out


def test_end_to_end_two_folds_with_callbacks(project):
    rec = Recorder()
    out = project.runs_dir / "two-folds"
    summary = Trainer(project, out, _config(folds=2, epochs=1, batch_size=4), callbacks=rec).run()

    assert summary["status"] == "finished" and len(summary["folds"]) == 2
    (start,) = rec.of("run_start")
    assert start["folds"] == 2 and start["n_labelled"] == 12 and start["device"] == "cpu"
    assert any("unlabelled" in m for m in rec.of("log"))
    assert rec.of("fold_start") == [(0, 2), (1, 2)]
    epochs = rec.of("epoch")
    assert len(epochs) == 2
    for e in epochs:
        for key in ("fold", "epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "val_auc", "val_miou", "lr", "seconds"):
            assert key in e
        assert math.isfinite(e["train_loss"]) and math.isfinite(e["val_loss"])
        assert 0.0 <= e["val_acc"] <= 1.0 and e["lr"] == pytest.approx(1e-3)  # random trunk: random_init_lr
        assert e["val_auc"] is None or 0.0 <= e["val_auc"] <= 1.0
    batches = rec.of("batch")
    n_train = start["n_train"]
    assert len(batches) == sum(math.ceil(n / 4) for n in n_train)
    b0 = batches[0]
    assert b0["batches"] == math.ceil(n_train[0] / 4) and b0["images_per_s"] > 0
    assert {"loss", "ce", "dice"} <= b0.keys()
    assert [f for f, _ in rec.of("fold_end")] == [0, 1]
    assert rec.of("run_end")[0]["status"] == "finished"

    run = Run(out)
    assert run.status == "finished" and run.variant == "fa-gusa" and run.input_size == SIZE
    assert [d.name for d in run.fold_dirs()] == ["fold-0", "fold-1"]
    val_ids = []
    for d in run.fold_dirs():
        model, meta = load_model(d)
        assert meta["fold"] in (0, 1) and meta["folds"] == 2 and len(meta["history"]) == 1
        assert meta["reinhard"]["method"] == "reinhard" and meta["mean"] == [0.485, 0.456, 0.406]
        assert meta["metrics"]["best"]["epoch"] == 1 and "val_acc" in meta["metrics"]["selection"]
        assert meta["training"]["lr"] == 5e-5 and meta["training"]["batch_size"] == 4
        assert (d / "last" / "model.safetensors").is_file()
        assert not (d / "last.pt-state").exists()  # resume state removed once the fold is done
        val_ids += meta["validation_ids"]
    labelled = sorted(r.id for r in project.images if r.label is not None)
    assert sorted(val_ids) == labelled  # the folds' validation sets partition the labelled images
    with pytest.raises(GusaError, match="already holds a run"):
        Trainer(project, out, _config()).run()


class StopAt(Recorder):
    def __init__(self, trainer_ref, epoch, batch):
        super().__init__()
        self.ref, self.epoch, self.batch = trainer_ref, epoch, batch
        self.after_request = 0
        self.requested = False

    def on_batch_end(self, rec):
        super().on_batch_end(rec)
        if self.requested:
            self.after_request += 1
        if (rec["epoch"], rec["batch"]) == (self.epoch, self.batch):
            self.ref[0].request_stop()
            self.requested = True


def test_stop_mid_epoch_then_resume_equals_uninterrupted(project, uninterrupted):
    out = project.runs_dir / "stopped"
    ref = []
    cb = StopAt(ref, epoch=2, batch=1)
    trainer = Trainer(project, out, _config(), callbacks=cb)
    ref.append(trainer)
    summary = trainer.run()
    assert summary["status"] == "stopped" and trainer.stopped
    assert cb.requested and cb.after_request == 0  # no batch ran after the request
    assert len(cb.of("epoch")) == 1 and not cb.of("fold_end")
    assert "--resume" in summary["resume_hint"]
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["status"] == "stopped"
    assert (out / "fold-0" / "last.pt-state" / "state.json").is_file()
    assert (out / "fold-0" / "model.safetensors").is_file()  # epoch 1's model stays

    rec = Recorder()
    summary = Trainer(project, out, _config(), callbacks=rec, resume=True).run()
    assert summary["status"] == "finished"
    assert [e["epoch"] for e in rec.of("epoch")] == [2]
    assert any("resuming after epoch 1" in m for m in rec.of("log"))
    _assert_same_weights(out / "fold-0" / "last" / "model.safetensors", uninterrupted / "fold-0" / "last" / "model.safetensors")
    _assert_same_weights(out / "fold-0" / "model.safetensors", uninterrupted / "fold-0" / "model.safetensors")
    hist = json.loads((out / "fold-0" / "model.json").read_text(encoding="utf-8"))["history"]
    ref_hist = json.loads((uninterrupted / "fold-0" / "model.json").read_text(encoding="utf-8"))["history"]
    assert [h["val_loss"] for h in hist] == [h["val_loss"] for h in ref_hist]


def test_cli_run_is_repeatable(project, uninterrupted, monkeypatch, capsys):
    from gusa_core.cli.main import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = project.runs_dir / "cli"
    code = main(
        ["train", str(project.folder), "--out", str(out), "--folds", "1", "--epochs", "2", "--batch-size", "3",
         "--input-size", "64x48", "--device", "cpu", "--pretrained", "none", "--seed", "0", "--workers", "0"]
    )
    assert code == 0
    printed = capsys.readouterr()
    assert "run finished" in printed.out and str(out) in printed.out and "val acc" in printed.out
    _assert_same_weights(out / "fold-0" / "last" / "model.safetensors", uninterrupted / "fold-0" / "last" / "model.safetensors")


def test_crash_marks_the_run_failed(project):
    class Boom(Recorder):
        def on_epoch_end(self, rec):
            raise RuntimeError("disk on fire")

    rec = Boom()
    out = project.runs_dir / "failed"
    with pytest.raises(RuntimeError, match="disk on fire"):
        Trainer(project, out, _config(epochs=1), callbacks=rec).run()
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["status"] == "failed" and "disk on fire" in meta["error"]
    assert any("training failed" in m and "disk on fire" in m for m in rec.of("log"))


def test_bad_settings_are_refused_before_training(project):
    with pytest.raises(GusaError, match="divisible by 16"):
        Trainer(project, project.runs_dir / "bad", _config(input_size=(60, 48))).run()
    with pytest.raises(GusaError, match="unknown variant"):
        Trainer(project, project.runs_dir / "bad2", _config(variant="vgg")).run()


def test_missing_imagenet_weights_are_reported_once_and_training_goes_on(project, tmp_path):
    """``pretrained="auto"`` with an empty TORCH_HOME (conftest): one clear message via on_log, random init."""
    rec = Recorder()
    Trainer(project, tmp_path / "run", _config(folds=2, epochs=1, pretrained="auto"), callbacks=rec).run()
    notes = [m for m in rec.of("log") if "ImageNet weights" in m]
    assert len(notes) == 1
    assert "not found at" in notes[0] and "random initialisation" in notes[0] and "--pretrained FILE" in notes[0]
    assert (tmp_path / "run" / "fold-1" / "model.safetensors").is_file()
    assert [m for m in rec.of("log") if "random_init_lr" in m] == [
        "random initial weights: learning rate 0.001 (random_init_lr) instead of 5e-05, cosine schedule"]
    assert rec.of("epoch") and all(e["lr"] == pytest.approx(1e-3) for e in rec.of("epoch"))


def test_random_init_lr_none_keeps_the_configured_rate(project, tmp_path):
    rec = Recorder()
    Trainer(project, tmp_path / "run", _config(epochs=1, random_init_lr=None, lr=2e-4), callbacks=rec).run()
    assert rec.of("epoch") and all(e["lr"] == pytest.approx(2e-4) for e in rec.of("epoch"))
    assert not [m for m in rec.of("log") if "random_init_lr" in m]
    with pytest.raises(GusaError, match="random_init_lr"):
        Trainer(project, tmp_path / "bad", _config(random_init_lr=float("nan"))).run()
