"""Help ▸ About: the GuSA Studio version and the versions of what it runs on.

:func:`about_text` lists GuSA Studio, Python, torch (its CUDA build, whether
CUDA is available and the GPUs it sees), torchvision, Qt/PySide6,
onnxruntime, OpenVINO, and the CPU engine chosen for this machine. Torch is imported only here, when the dialog opens, so the
application still starts without it. :func:`version_info` returns the same as
a dict, for bug reports.
"""

from __future__ import annotations

import platform
import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

__all__ = ["AboutDialog", "about_text", "version_info"]

_METHOD = (
    "Method: H. Yang, J.-Y. Kim, H. Kim, S. P. Adhikari, <i>Guided Soft Attention Network for "
    "Classification of Breast Cancer Histopathology Images</i>, IEEE TMI 39(5), 2020."
)


def _module_version(name: str) -> str:
    try:
        module = __import__(name)
    except Exception as exc:  # missing, or a broken install: say so instead of failing the dialog
        return f"not available ({type(exc).__name__})"
    return str(getattr(module, "__version__", "unknown"))


def _torch_info() -> dict[str, str]:
    try:
        import torch
    except Exception as exc:
        return {"torch": f"not available ({type(exc).__name__}: {exc})"}
    info = {"torch": torch.__version__}
    cuda_build = torch.version.cuda
    if not cuda_build:
        info["CUDA"] = "CPU-only build of torch"
    else:
        try:
            available = torch.cuda.is_available()
        except Exception:
            available = False
        info["CUDA"] = f"{cuda_build} (available: {'yes' if available else 'no'})"
        if available:
            names = []
            for i in range(torch.cuda.device_count()):
                try:
                    names.append(f"cuda:{i} {torch.cuda.get_device_name(i)}")
                except Exception as exc:
                    names.append(f"cuda:{i} ({exc})")
            info["GPUs"] = ", ".join(names) if names else "none"
            try:
                info["cuDNN"] = str(torch.backends.cudnn.version())
            except Exception:
                pass
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info["MPS"] = "available"
    info["CPU threads"] = str(torch.get_num_threads())
    return info


def _engine_info() -> dict[str, str]:
    """The CPU and the inference engine a CPU prediction uses on it, with the reason."""
    try:
        from gusa_core.engines import choose_engine, cpu_info

        cpu = cpu_info()
        name, precision, reason = choose_engine(cpu)
    except Exception as exc:  # noqa: BLE001 - no engine installed: say so in the dialog
        return {"Inference": f"torch only ({exc})"}
    return {"CPU": cpu.model, "Inference": f"{name} {precision} ({reason}; bf16 only once it agrees with fp32 "
                                           "on a run's validation images)" if precision != "fp32" else f"{name} fp32 ({reason})"}


def version_info() -> dict[str, str]:
    """Versions of GuSA Studio and the libraries it runs on (imports torch).

    Returns
    -------
    dict of str to str
        In display order: ``GuSA Studio``, ``Python``, ``torch``, ``CUDA``
        (and ``GPUs``, ``cuDNN`` where available), ``torchvision``, ``Qt``,
        ``PySide6``, ``onnxruntime``, ``OpenVINO``, ``CPU``, ``Inference`` (the CPU
        engine and precision chosen for this machine, and why), ``Platform``.
    """
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from gusa_core import __version__

    frozen = " (bundle)" if getattr(sys, "frozen", False) else ""
    info = {"GuSA Studio": f"{__version__}{frozen}", "Python": platform.python_version()}
    info.update(_torch_info())
    info["torchvision"] = _module_version("torchvision")
    info["Qt"] = qVersion()
    info["PySide6"] = pyside_version
    info["onnxruntime"] = _module_version("onnxruntime")
    info["OpenVINO"] = _module_version("openvino")
    info.update(_engine_info())
    info["Platform"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    return info


def about_text() -> str:
    """The versions as plain text, one ``name: version`` per line (for copying into a bug report)."""
    info = version_info()
    width = max(len(k) for k in info)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in info.items())


class AboutDialog(QDialog):
    """Help ▸ About: what GuSA Studio is, its version and the versions of torch, CUDA and Qt.

    The version list is selectable text with a *Copy* button, for bug reports.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        from gusa_core import __version__

        self.setWindowTitle("About GuSA Studio")
        if parent is not None and not parent.windowIcon().isNull():
            self.setWindowIcon(parent.windowIcon())
        layout = QVBoxLayout(self)
        self.header = header = QLabel(
            f"<h3>GuSA Studio {__version__}</h3>"
            "<p>Teach a neural network where to look: paint coarse regions of interest on H&amp;E images, "
            "train a Guided Soft Attention network and review its attention.</p>"
            f"<p>{_METHOD}</p><p>Not a medical device: for research use only.</p>"
        )
        header.setWordWrap(True)
        header.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(header)
        self.versions = QPlainTextEdit(about_text())
        self.versions.setReadOnly(True)
        self.versions.setObjectName("about_versions")
        font = self.versions.font()
        font.setFamily("monospace")
        font.setStyleHint(font.StyleHint.Monospace)
        self.versions.setFont(font)
        self.versions.setMinimumHeight(self.versions.fontMetrics().lineSpacing() * (self.versions.blockCount() + 2))
        layout.addWidget(self.versions)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = buttons.addButton("Copy versions", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout.addWidget(buttons)
        self.resize(560, self.sizeHint().height())

    def _on_copy_button_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.versions.toPlainText())
