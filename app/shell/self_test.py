"""``gusa-studio --self-test``: prove that an installation (or a frozen bundle) works.

Without a display (``QT_QPA_PLATFORM=offscreen`` is set when none is found) the
self-test writes a small demo project to a temporary folder, opens it in the
real main window, builds a tiny random-weight ``fa-gusa`` model, saves it as a
one-fold run and classifies one demo image with it through
:class:`gusa_core.inference.Predictor`, the code path the application uses.
Each step is printed with a tick and its time; the first failure is printed
with its reason and the exit status is 1. Nothing outside the temporary folder
is touched: the Qt settings are redirected there too, so the user's recent
projects stay as they were. No path of the source tree is used, so the same
code runs in a PyInstaller bundle.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

__all__ = ["run_self_test", "SelfTestError", "SELF_TEST_INPUT_SIZE"]

#: Network input (width, height) of the self-test's tiny model: small, so it runs in seconds on any CPU.
SELF_TEST_INPUT_SIZE = (64, 48)
_IMAGE_SIZE = (96, 72)  # demo images (width, height)
_PER_CLASS = 1
_UNLABELLED = 1


class SelfTestError(RuntimeError):
    """A check of the self-test failed; the message says which and why."""


class _Reporter:
    """Prints one line per step: ``✓ name (0.12 s)`` or ``✗ name: reason``."""

    def __init__(self, stream):
        self.stream = stream
        self.t0 = time.perf_counter()

    def line(self, text: str) -> None:
        try:
            print(text, file=self.stream, flush=True)
        except UnicodeEncodeError:  # a console that cannot show ✓
            print(text.encode("ascii", "replace").decode("ascii"), file=self.stream, flush=True)

    def step(self, name: str, fn):
        t = time.perf_counter()
        try:
            detail = fn()
        except Exception as exc:
            self.line(f"✗ {name}: {type(exc).__name__}: {exc}")
            raise
        extra = f" — {detail}" if detail else ""
        self.line(f"✓ {name} ({time.perf_counter() - t:.2f} s){extra}")
        return detail


class _ErrorLog(logging.Handler):
    """Collects the messages of ERROR records (a feature that failed to install logs one)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _output_stream():
    """stdout, or a log file where a windowed executable has none (Windows ``console=False``)."""
    if sys.stdout is not None:
        return sys.stdout, None
    log = Path(tempfile.gettempdir()) / "gusa-studio-self-test.log"
    return open(log, "w", encoding="utf-8"), log


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SelfTestError(message)


def run_self_test() -> int:
    """Run the self-test; return the process exit status (0 = everything works).

    Returns
    -------
    int
        0 when every step passed, 1 otherwise (the failing step is printed).
    """
    stream, log = _output_stream()
    rep = _Reporter(stream)
    from gusa_core import __version__

    frozen = " (frozen bundle)" if getattr(sys, "frozen", False) else ""
    rep.line(f"GuSA Studio {__version__} self-test{frozen}: Python {sys.version.split()[0]} on {sys.platform}")
    tmp = Path(tempfile.mkdtemp(prefix="gusa-self-test-"))
    state: dict = {}
    status = 1
    try:
        _run_steps(rep, tmp, state)
        status = 0
    except Exception as exc:
        if not isinstance(exc, SelfTestError):
            rep.line("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
        rep.line(f"self-test FAILED after {time.perf_counter() - rep.t0:.1f} s: {exc}")
    finally:
        _teardown(state)
        shutil.rmtree(tmp, ignore_errors=True)
    if status == 0:
        rep.line(f"self-test passed in {time.perf_counter() - rep.t0:.1f} s")
    if log is not None:
        stream.close()
    return status


def _run_steps(rep: _Reporter, tmp: Path, state: dict) -> None:
    def write_demo():
        from gusa_core.demo import write_demo_project

        project = write_demo_project(tmp / "demo", seed=0, per_class=_PER_CLASS, unlabelled=_UNLABELLED, size=_IMAGE_SIZE)
        state["project_folder"] = Path(project.folder)
        state["n_images"] = len(project.images)
        state["first_image"] = project.image_path(project.images[0].id)
        return f"{len(project.images)} images of {_IMAGE_SIZE[0]}x{_IMAGE_SIZE[1]} in {project.folder}"

    rep.step("write a demo project", write_demo)

    def start_qt():
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6 import __version__ as pyside_version
        from PySide6.QtCore import QSettings, qVersion
        from PySide6.QtWidgets import QApplication

        from app.base.settings import APPLICATION, ORGANIZATION

        # Settings (recent projects, window layout) go to the temporary folder, not the user's.
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
        app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "gusa-studio"])
        app.setOrganizationName(ORGANIZATION)
        app.setApplicationName(APPLICATION)
        state["app"] = app
        return f"Qt {qVersion()}, PySide6 {pyside_version}, platform {app.platformName()}"

    rep.step("start Qt", start_qt)

    def open_window():
        from app.base import errors
        from app.base.icon import app_icon
        from app.shell.main_window import MainWindow

        # An error dialog would wait for a click that never comes: record its text and fail instead.
        messages: list[str] = []
        errors.set_error_sink(lambda parent, title, text, details="": messages.append(f"{title}: {text}"))
        state["sink_set"] = True
        icon = app_icon()
        _check(not icon.isNull(), "the application icon is empty")
        state["app"].setWindowIcon(icon)
        errors_logged = _ErrorLog()
        logging.getLogger().addHandler(errors_logged)
        try:
            window = MainWindow()
            state["window"] = window
            window.show()
            opened = window.open_project(state["project_folder"])
            # The model features (training, review, ...) install themselves once the event loop runs.
            deadline = time.perf_counter() + 60
            while not window._features_installed and time.perf_counter() < deadline:
                state["app"].processEvents()
            state["app"].processEvents()
        finally:
            logging.getLogger().removeHandler(errors_logged)
        _check(not errors_logged.records, "the window logged an error:\n" + "\n".join(errors_logged.records))
        _check(not messages, f"the window reported an error: {'; '.join(messages)}")
        from app.shell.features import FEATURE_MODULES

        missing = [m for m in FEATURE_MODULES if m not in window.features]
        _check(not missing, f"features not installed in the window: {', '.join(missing)}")
        _check(bool(opened), f"MainWindow.open_project({state['project_folder']}) returned False")
        ids = window.image_list.model.ids()
        _check(len(ids) == state["n_images"], f"the image list shows {len(ids)} images, the project has {state['n_images']}")
        title = window.windowTitle()
        # the project's folder name (the platform adds the application's name after it)
        _check(Path(state["project_folder"]).name in title, f"unexpected window title {title!r}")
        return f"{len(ids)} images listed, {len(FEATURE_MODULES)} features installed, title {title!r}"

    rep.step("open it in the main window", open_window)

    def import_torch():
        import torch

        torch.set_num_threads(min(2, torch.get_num_threads()))
        cuda = f"CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}" if torch.version.cuda else "CPU-only build"
        return f"torch {torch.__version__} ({cuda})"

    rep.step("import torch", import_torch)

    def about():
        from app.shell.about import AboutDialog

        dialog = AboutDialog(state["window"])
        text = dialog.versions.toPlainText()
        dialog.deleteLater()
        for name in ("GuSA Studio", "Python", "torch", "torchvision", "Qt", "onnxruntime"):
            _check(f"\n{name}:" in "\n" + text, f"Help > About lacks the {name} version")
        _check("not available" not in text, f"Help > About reports a missing library:\n{text}")
        return ", ".join(" ".join(line.split()) for line in text.splitlines() if line.startswith(("torch:", "CUDA:")))

    rep.step("Help ▸ About lists the versions", about)

    def save_run():
        import torch

        from gusa_core.demo import DEMO_CLASSES
        from gusa_core.runs import runs_dir, write_untrained_run
        from gusa_core.stain import ReinhardNormalizer

        torch.set_num_threads(min(2, torch.get_num_threads()))
        run = write_untrained_run(runs_dir(state["project_folder"]) / "self-test", variant="fa-gusa",
                                  class_names=list(DEMO_CLASSES), input_size=SELF_TEST_INPUT_SIZE, folds=1, seed=0,
                                  reinhard=ReinhardNormalizer.default().to_dict())
        state["run_dir"] = run.folder
        models = run.load_models(device="cpu")
        n = sum(p.numel() for p in models[0][0].parameters())
        w, h = SELF_TEST_INPUT_SIZE
        return f"fa-gusa, {n / 1e6:.1f} M parameters, random weights, input {w}x{h}"

    rep.step("build a tiny model and save it as a run", save_run)

    def predict():
        import numpy as np

        from gusa_core.imageio import read_image
        from gusa_core.inference import Predictor

        predictor = Predictor.from_run(state["run_dir"], device="cpu")
        state["predictor"] = predictor
        image = read_image(state["first_image"])
        pred = predictor.predict([image])[0]
        total = float(np.sum(pred.probs))
        _check(pred.probs.shape == (len(predictor.class_names),), f"probabilities have shape {pred.probs.shape}")
        _check(abs(total - 1.0) < 1e-4, f"class probabilities sum to {total:.6f}, not 1")
        _check(bool(np.all(np.isfinite(pred.probs))), "class probabilities are not finite")
        _check(pred.attention.shape == image.shape[:2],
               f"attention map is {pred.attention.shape}, the image is {image.shape[:2]}")
        _check(float(pred.attention.min()) >= 0.0 and float(pred.attention.max()) <= 1.0, "attention map leaves [0, 1]")
        return (f"{Path(state['first_image']).name} → {pred.label} (p={float(pred.probs.max()):.2f}), "
                f"{pred.attention_kind} map {pred.attention.shape[1]}x{pred.attention.shape[0]}, backend {predictor.backend}")

    rep.step("classify a demo image", predict)


def _teardown(state: dict) -> None:
    """Close the window (saving nothing outside the temporary folder) and restore patched hooks."""
    window = state.get("window")
    app = state.get("app")
    try:
        if window is not None:
            window.close()
            window.deleteLater()
        if app is not None:
            app.processEvents()
    except Exception:  # the test result is already decided
        pass
    if state.get("sink_set"):
        from app.base import errors

        errors.set_error_sink(None)
