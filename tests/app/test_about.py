"""Help ▸ About: the versions of GuSA Studio, Python, torch, CUDA, Qt and onnxruntime."""

from __future__ import annotations

import platform

import onnxruntime
import torch
import torchvision
from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QApplication

from gusa_core import __version__


def test_about_text_names_every_version():
    from app.shell.about import about_text, version_info

    info = version_info()
    assert info["GuSA Studio"].startswith(__version__)
    assert info["Python"] == platform.python_version()
    assert info["torch"] == torch.__version__
    assert info["torchvision"] == torchvision.__version__
    assert info["Qt"] == qVersion()
    assert info["PySide6"] == pyside_version
    assert info["onnxruntime"] == onnxruntime.__version__
    from gusa_core.engines import choose_engine, cpu_info

    name, precision, reason = choose_engine()
    assert info["CPU"] == cpu_info().model
    assert info["Inference"].startswith(f"{name} {precision} ({reason}")
    if torch.version.cuda:
        assert info["CUDA"].startswith(torch.version.cuda)
        assert ("available: yes" in info["CUDA"]) == torch.cuda.is_available()
    else:
        assert info["CUDA"] == "CPU-only build of torch"
    lines = about_text().splitlines()
    assert len(lines) == len(info)
    assert any(line.startswith("torch:") and line.endswith(torch.__version__) for line in lines)


def test_about_dialog_shows_and_copies_the_versions(qtbot):
    from app.shell.about import AboutDialog

    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    assert f"GuSA Studio {__version__}" in dialog.header.text()
    assert dialog.windowTitle() == "About GuSA Studio"
    text = dialog.versions.toPlainText()
    assert "torch:" in text and torch.__version__ in text and qVersion() in text
    dialog.copy_button.click()
    assert QApplication.clipboard().text() == text
