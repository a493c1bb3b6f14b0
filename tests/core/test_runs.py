"""gusa_core.runs: the run folder's paths, reading (tolerant and strict), summary, and untrained runs."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from gusa_core.checkpoint import load_model  # noqa: E402
from gusa_core.errors import CheckpointError  # noqa: E402
from gusa_core.runs import (  # noqa: E402
    RUN_FILE,
    Run,
    RunState,
    fold_dir,
    fold_number,
    last_model_dir,
    list_runs,
    model_folders,
    read_run_meta,
    state_dir,
    summarize,
    write_untrained_run,
)

CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]
SIZE = (64, 48)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proj") / "runs" / "r1"
    return write_untrained_run(folder, variant="gusa", class_names=CLASSES, input_size=SIZE, folds=2, seed=3,
                               validation_ids=[["a"], ["b", "c"]])


def test_fold_paths_round_trip(tmp_path):
    d = fold_dir(tmp_path, 3)
    assert d == tmp_path / "fold-3" and fold_number(d) == 3
    assert fold_number(tmp_path / "fold-x") is None and fold_number(tmp_path / "last") is None
    assert fold_number(tmp_path / "folder-1") is None
    assert last_model_dir(d).parent == d and state_dir(d).parent == d and last_model_dir(d) != state_dir(d)


def test_write_untrained_run_is_a_valid_run(untrained):
    run = untrained
    assert isinstance(run, Run) and run.status == "finished" and run.folds == 2
    assert run.variant == "gusa" and run.class_names == CLASSES and run.input_size == SIZE
    assert [fold_number(d) for d in run.fold_dirs()] == [0, 1]
    assert run.fold_dirs(1) == [fold_dir(run.folder, 1)]
    with pytest.raises(CheckpointError, match="fold 5"):
        run.fold_dirs(5)
    models = run.load_models()
    assert [m["validation_ids"] for _, m in models] == [["a"], ["b", "c"]]
    x = torch.rand(2, 3, SIZE[1], SIZE[0])
    with torch.no_grad():
        a, b = (model(x).logits for model, _ in models)
    assert not torch.allclose(a, b)  # folds hold different random weights
    assert not torch.allclose(a[0], a[1])  # and the outputs depend on the image


def test_write_untrained_run_is_reproducible(untrained, tmp_path):
    again = write_untrained_run(tmp_path / "r", variant="gusa", class_names=CLASSES, input_size=SIZE, folds=2, seed=3)
    for d0, d1 in zip(untrained.fold_dirs(), again.fold_dirs()):
        m0, _ = load_model(d0)
        m1, _ = load_model(d1)
        for (k, v0), v1 in zip(m0.state_dict().items(), m1.state_dict().values()):
            assert torch.equal(v0, v1), k


def test_model_folders_accepts_a_run_a_model_folder_or_a_file(untrained):
    f0 = fold_dir(untrained.folder, 0)
    assert model_folders(untrained.folder) == untrained.fold_dirs()
    assert model_folders(untrained.folder, fold=1) == [fold_dir(untrained.folder, 1)]
    assert model_folders(f0) == [f0]
    assert model_folders(f0 / "model.json") == [f0]
    with pytest.raises(CheckpointError, match="no such run folder"):
        model_folders(untrained.folder.parent / "nowhere")


def test_read_run_meta_is_tolerant(tmp_path, untrained):
    assert read_run_meta(untrained.folder)["variant"] == "gusa"
    assert read_run_meta(tmp_path) is None
    (tmp_path / RUN_FILE).write_text("{not json")
    assert read_run_meta(tmp_path) is None
    (tmp_path / RUN_FILE).write_text("[1, 2]")
    assert read_run_meta(tmp_path) is None
    (tmp_path / RUN_FILE).write_text(json.dumps({"format": "something-else"}))
    assert read_run_meta(tmp_path) is None
    (tmp_path / RUN_FILE).write_bytes(b"\xff\xfe\x00")
    assert read_run_meta(tmp_path) is None


def test_summary_means_over_finished_folds_with_training_keys(tmp_path):
    state = RunState(tmp_path, {"format": "gusa-run", "variant": "fa", "folds": 3, "selection": "val_acc"}, write=True)
    state.set_fold(0, {"fold": 0, "status": "finished", "val_acc": 0.5, "val_auc": 0.75, "val_miou": None})
    state.set_fold(1, {"fold": 1, "status": "finished", "val_acc": 1.0, "val_auc": None, "val_miou": None})
    state.set_fold(2, {"fold": 2, "status": "stopped", "val_acc": 0.0})
    state.finish("stopped")
    expected = state.summary(3)
    assert expected["mean_val_acc"] == pytest.approx(0.75) and expected["mean_val_auc"] == pytest.approx(0.75)
    assert expected["mean_val_miou"] is None and expected["status"] == "stopped" and expected["selection"] == "val_acc"
    assert Run(tmp_path).summary() == expected  # what training returned is what the run folder reads back
    assert summarize({"folds": 2}, tmp_path)["folds"] == [{"fold": 0, "status": "pending"}, {"fold": 1, "status": "pending"}]
    assert set(expected) == {"status", "run_dir", "variant", "folds", "mean_val_acc", "mean_val_auc", "mean_val_miou",
                             "messages", "selection"}


def test_run_folder_and_list_runs(untrained, tmp_path):
    project = tmp_path / "proj"
    run_dir = project / "runs" / "r1"
    f0 = fold_dir(run_dir, 0)
    f0.mkdir(parents=True)
    for p in fold_dir(untrained.folder, 0).iterdir():
        (f0 / p.name).write_bytes(p.read_bytes())
    (run_dir / "fold-1").mkdir()  # an unfinished fold: no model yet
    meta = {"format": "gusa-run", "variant": "gusa", "class_names": CLASSES, "input_size": [64, 48], "status": "stopped", "folds": 2, "created": "2026-01-01T00:00:00+00:00"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (project / "runs" / "broken").mkdir()
    (project / "runs" / "broken" / "run.json").write_text("[")
    run = Run(run_dir)
    assert run.variant == "gusa" and run.class_names == CLASSES and run.input_size == (64, 48)
    assert run.status == "stopped" and run.folds == 2
    assert run.fold_dirs() == [run_dir / "fold-0"]
    models = run.load_models()
    assert len(models) == 1 and models[0][1]["variant"] == "gusa"
    assert [r.folder for r in list_runs(project)] == [run_dir]
    with pytest.raises(CheckpointError):
        Run(tmp_path / "none")
