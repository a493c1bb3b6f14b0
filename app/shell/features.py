"""The model features (classes, training, runs, review, compare, classify, report) that plug into the window.

Each feature module exposes ``install(host: Host)`` (see :mod:`app.shell.host`)
and may return its main widget; the main window calls :func:`install_all`
once after its own widgets exist. Features talk to the host and its services
only, so the order below is only the order of their docks and menu entries:
any other order works. None of these modules imports torch at install time.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

__all__ = ["FEATURE_MODULES", "install_all"]

#: Installed in this order (docks stack in it); any order works.
FEATURE_MODULES = (
    "app.workspace.classes_dialog",
    "app.training.training_panel",
    "app.training.runs_panel",
    "app.review.review_panel",
    "app.review.compare_view",
    "app.review.assist_panel",
    "app.classify.classify_dialog",
    "app.report.report_view",
    "app.slides.slide_predict_panel",
)


def install_all(host, modules: Iterable[str] = FEATURE_MODULES) -> dict[str, object]:
    """Install every feature module into ``host``; returns ``{module name: what its install returned}``."""
    installed = {}
    for name in modules:
        installed[name] = importlib.import_module(name).install(host)
    return installed
