"""Fixtures shared by the core and app tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Keep torch and BLAS to the machine's two cores and never let a test download.
os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real H&E sample data: ``$GUSA_SHARED_DATA``, default ``../shared/data`` beside the repository."""
    return Path(os.environ.get("GUSA_SHARED_DATA") or ROOT.parent / "shared" / "data")


def require_shared_data() -> bool:
    """Whether a missing sample file fails the test (``GUSA_REQUIRE_SHARED_DATA=1``, set by ``.ci/run``)."""
    return os.environ.get("GUSA_REQUIRE_SHARED_DATA", "") == "1"


def missing_shared_data(what: str) -> None:
    """Skip the test for lack of real tissue, or fail it where the data is required."""
    message = f"{what} (the real H&E samples; set GUSA_SHARED_DATA to their folder)"
    if require_shared_data():
        pytest.fail(message + " but GUSA_REQUIRE_SHARED_DATA=1", pytrace=False)
    pytest.skip(message)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """No test may find (or download) ImageNet weights by accident."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real H&E images (see :func:`shared_data_dir`); skips, or fails, where it is absent."""
    folder = shared_data_dir()
    if not folder.is_dir():
        missing_shared_data(f"{folder} not found")
    return folder


@pytest.fixture(scope="session")
def he_tif(shared_data) -> Path:
    """A 2048x1536 plain RGB TIFF of real H&E tissue (BACH's size and encoding)."""
    path = shared_data / "he_bach_size.tif"
    if not path.is_file():
        missing_shared_data(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def he_svs(shared_data) -> Path:
    """An Aperio SVS (tiled, JPEG-compressed TIFF) of real H&E tissue."""
    path = shared_data / "cmu_small_region.svs"
    if not path.is_file():
        missing_shared_data(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A demo project and a 2-fold ``fa-gusa`` run trained for 1 epoch at 64x48 (shared, read-only).

    Returns ``(project_folder, run_folder)``. Tests that modify the project
    must copy it first.
    """
    from gusa_core.demo import write_demo_project
    from gusa_core.training import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("tiny_run")
    project = write_demo_project(root / "demo", seed=1, per_class=4, unlabelled=2, size=(256, 192))
    run_dir = project.folder / "runs" / "tiny-fa-gusa"
    config = TrainConfig(variant="fa-gusa", folds=2, epochs=1, batch_size=4, input_size=(64, 48),
                         pretrained="none", seed=0, workers=0, device="cpu")
    Trainer(project, run_dir, config).run()
    return project.folder, run_dir


@pytest.fixture(scope="session")
def huge_slide(tmp_path_factory) -> Path:
    """A 40,000 x 30,000 JPEG-tiled pyramidal TIFF at 0.25 µm/px, objective 40x (written once per session).

    Levels 1/4/16/64; written tile by tile (blank tiles from one cached encoding), so level 0 is
    never held in memory.
    """
    from slide_fixtures import TissuePainter, write_pyramid_tiff

    painter = TissuePainter(40_000, 30_000, n_blobs=4, size=0.03)
    return write_pyramid_tiff(tmp_path_factory.mktemp("huge") / "huge.tif", 40_000, 30_000, painter=painter, mpp=0.25)
