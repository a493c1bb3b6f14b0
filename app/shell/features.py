"""Wire the model features (training, runs, review, compare, classify, report) into the main window.

Each feature module exposes ``install(window)``; the main window calls
:func:`install_all` once after its own widgets exist. Keeping the list here
means the main window never grows an import per feature, and none of these
modules imports torch at install time.
"""

from __future__ import annotations

import importlib
import logging

__all__ = ["FEATURE_MODULES", "install_all"]

log = logging.getLogger(__name__)

#: Installed in this order (docks stack in it).
FEATURE_MODULES = (
    "app.workspace.classes_dialog",
    "app.training.training_panel",
    "app.training.runs_panel",
    "app.review.review_panel",
    "app.review.compare_view",
    "app.classify.classify_dialog",
    "app.report.report_view",
)


def install_all(window) -> list[str]:
    """Install every feature module into ``window``; returns the names installed."""
    installed = []
    for name in FEATURE_MODULES:
        module = importlib.import_module(name)
        module.install(window)
        installed.append(name)
    return installed
