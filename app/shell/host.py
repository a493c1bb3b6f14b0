"""The typed door between the main window and the features that plug into it.

A feature module exposes ``install(host: Host) -> QWidget | None`` and talks to
the :class:`Host` and its services only: never to another feature, never to
the window by attribute name. Features are installed in an undefined order
(as QuPath installs its extensions), so a feature that needs another's
state asks a shared service (:class:`~app.base.runs_model.RunsModel`) or
the host (``show_dock``) at the time it needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PySide6.QtCore import Qt, SignalInstance
    from pathlib import Path

    from PySide6.QtWidgets import QDockWidget, QMenu, QWidget

    from app.base.dialogs import Dialogs
    from app.base.runs_model import RunsModel
    from app.workspace.canvas_tools import AnnotationView
    from app.workspace.image_list import ImageListPanel
    from gusa_core.project import Project

__all__ = ["Host"]


@runtime_checkable
class Host(Protocol):
    """What the main window offers to a feature (:class:`~app.shell.main_window.MainWindow` implements it).

    The host is also the ``QMainWindow`` itself: the parent of a feature's
    dialogs and actions, and where a feature may install an event filter.

    Attributes
    ----------
    project : gusa_core.project.Project or None
        The open project.
    canvas : AnnotationView
        The one canvas, for flat images and slides alike: ``canvas.set_overlay(name, rgba, downsample=...)``,
        ``canvas.set_outline(name, polygons)``, ``clicked(x, y)`` in level-0 pixels (pan tool),
        ``center_on(x, y)``, ``is_slide()``.
    image_list : ImageListPanel
        ``image_list.set_predictions({id: (label, p)})``.
    file_menu, model_menu, image_menu, view_menu : QMenu
        Where a feature adds its actions.
    dialogs : Dialogs
        The standard dialogs (tests replace them).
    runs : RunsModel
        The project's runs, the active run and the run being trained.
    current_image_changed : Signal(str)
        The image shown in the canvas changed (its id).
    project_opened : Signal(object)
        A project was opened (the ``Project``).
    slide_shown : Signal(str)
        A slide is on screen in the canvas (its id).
    """

    project: Project | None
    canvas: AnnotationView
    image_list: ImageListPanel
    file_menu: QMenu
    model_menu: QMenu
    image_menu: QMenu
    view_menu: QMenu
    dialogs: Dialogs
    runs: RunsModel
    current_image_changed: SignalInstance
    project_opened: SignalInstance
    slide_shown: SignalInstance

    def current_image_id(self) -> str | None:
        """Id of the image shown in the canvas, or ``None``."""

    def current_image(self) -> np.ndarray | None:
        """The shown image, ``(H, W, 3)`` uint8, or ``None``."""

    def current_slide(self) -> tuple[str, Path] | None:
        """``(id, path)`` of the slide shown in the canvas, or ``None``."""

    def select_image(self, image_id: str) -> None:
        """Show ``image_id`` in the canvas."""

    def add_dock(self, widget: QWidget, title: str, area: Qt.DockWidgetArea = ...) -> QDockWidget:
        """Add ``widget`` as a dock titled ``title`` (hidden/shown from the View menu)."""

    def show_dock(self, title: str) -> bool:
        """Show and raise the dock titled ``title``; False when there is none (yet)."""

    def replace_mask(self, mask: np.ndarray, *, how: str = "union") -> None:
        """Put ``mask`` ((H, W) uint8) into the shown image's RoI as one undo step, saved like a stroke."""

    def show_status(self, text: str, msecs: int = 3000) -> None:
        """A transient status-bar message."""

    def review_field(self, image: np.ndarray, title: str, *, run_dir: str, fold: int | None = None) -> bool:
        """Show ``image`` ((H, W, 3) uint8, not a project image: a slide's field) in the Review dock, predicted with
        ``run_dir`` (``fold`` None: the ensemble); False when the Review feature is not installed."""
