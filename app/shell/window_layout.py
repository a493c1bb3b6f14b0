"""The main window's dock layout: docks that fit a laptop screen, and View ▸ Reset layout.

A mixin of :class:`~app.shell.main_window.MainWindow`. Every dock's widget sits
in a scroll area, so a dock never demands more height than the screen has (a
tall form scrolls instead of pushing the window past the screen or drawing
docks over each other). The docks of the right-hand side share one tabbed
stack: Annotate, Training, Runs, Review. Showing a dock raises its tab and
keeps the window's frame inside the screen's available geometry.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea, QWidget

__all__ = ["WindowLayoutMixin", "DOCK_MIN_WIDTH"]

#: Narrowest a side dock gets (its contents scroll sideways below that).
DOCK_MIN_WIDTH = 240


def _scrolled(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setObjectName(f"{widget.objectName() or type(widget).__name__}_scroll")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    area.setMinimumWidth(DOCK_MIN_WIDTH)
    return area


class WindowLayoutMixin:
    """Dock creation, the tabbed right-hand stack, fitting to the screen and Reset layout."""

    def _make_dock(self, widget: QWidget, title: str, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        # "<title>_dock": the name the features give their docks too, so a saved layout restores them
        dock.setObjectName(f"{title.lower().replace(' ', '_')}_dock")
        dock.setWidget(_scrolled(widget))
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        dock.setProperty("default_area", int(area.value) if hasattr(area, "value") else int(area))
        self.addDockWidget(area, dock)
        self._tabify_into_area(dock, area)
        dock.visibilityChanged.connect(lambda visible: visible and self.fit_to_screen())
        return dock

    def _tabify_into_area(self, dock: QDockWidget, area) -> None:
        """Stack ``dock`` as a tab onto the first other dock of the same side (right side only)."""
        if area != Qt.DockWidgetArea.RightDockWidgetArea:
            return
        for other in self._all_docks():
            if other is not dock and not other.isFloating() and self.dockWidgetArea(other) == area:
                self.tabifyDockWidget(other, dock)
                return

    def _all_docks(self) -> list[QDockWidget]:
        return [d for d in self.findChildren(QDockWidget) if d.parent() is self]

    def dock_contents(self, dock: QDockWidget) -> QWidget:
        """The widget a feature put into ``dock`` (inside the dock's scroll area)."""
        inner = dock.widget()
        return inner.widget() if isinstance(inner, QScrollArea) else inner

    def fit_to_screen(self) -> None:
        """Keep the window's frame inside the available geometry of its screen (never taller than it)."""
        if self.isMaximized() or self.isFullScreen() or not self.isVisible():
            return
        screen = self.screen()
        if screen is None:
            return
        avail: QRect = screen.availableGeometry()
        frame = self.frameGeometry()
        extra_w = frame.width() - self.width()
        extra_h = frame.height() - self.height()
        w = min(self.width(), avail.width() - extra_w)
        h = min(self.height(), avail.height() - extra_h)
        if (w, h) != (self.width(), self.height()):
            self.resize(w, h)
        frame = self.frameGeometry()
        x = min(max(frame.x(), avail.x()), avail.right() + 1 - frame.width())
        y = min(max(frame.y(), avail.y()), avail.bottom() + 1 - frame.height())
        if (x, y) != (frame.x(), frame.y()):
            self.move(x, y)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if not getattr(self, "_fit_queued", False):
            self._fit_queued = True
            QTimer.singleShot(0, self._fit_queued_call)

    def _fit_queued_call(self) -> None:
        self._fit_queued = False
        self.fit_to_screen()

    def default_window_size(self) -> tuple[int, int]:
        """1440x900, or 92 % of the screen's available area where that is smaller."""
        screen = self.screen()
        if screen is None:
            return 1440, 900
        avail = screen.availableGeometry()
        return min(1440, int(avail.width() * 0.92)), min(900, int(avail.height() * 0.92))

    def reset_layout(self) -> None:
        """Put every dock back where it starts: Images left, the rest tabbed on the right, Annotate in front."""
        right = Qt.DockWidgetArea.RightDockWidgetArea
        first_right = None
        for dock in self._all_docks():
            dock.setFloating(False)
            area = Qt.DockWidgetArea(int(dock.property("default_area") or right.value))
            self.addDockWidget(area, dock)
            if area == right:
                if first_right is None:
                    first_right = dock
                else:
                    self.tabifyDockWidget(first_right, dock)
            dock.setVisible(dock in (self.image_list_dock, self.side_panel_dock))
        self.resizeDocks([self.image_list_dock, self.side_panel_dock], [300, 360], Qt.Orientation.Horizontal)
        self.side_panel_dock.raise_()
        self.fit_to_screen()
