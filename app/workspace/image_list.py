"""The project's image list: thumbnail, name, class, RoI and prediction columns.

:class:`ImageListModel` is a table model over ``project.images``;
:class:`ImageListPanel` wraps it in a sortable, filterable ``QTableView``.
Thumbnails are made lazily (only rows the view asks for) on a ``QThreadPool``
from the project's down-sampled cache, so a 400-image project opens at once.
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPoint,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.base.workers import job_pool
from app.workspace.thumbnails import ThumbJob, ThumbSignals

__all__ = ["ImageListModel", "ImageFilterProxy", "ImageListPanel", "THUMB_SIZE", "ALL", "UNLABELLED", "DISAGREE"]

THUMB_SIZE = QSize(64, 48)
COL_THUMB, COL_NAME, COL_CLASS, COL_ROI, COL_PRED, COL_NEXT = range(6)
_HEADERS = ("", "Image", "Class", "RoI", "Predicted", "Next")
_TIPS = ("Thumbnail", "Image name", "Class (label)", "Has an RoI mask", "Predicted class (probability)",
         "Next to annotate: rank in the queue of what the model least knows")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 2

ALL = "__all__"
UNLABELLED = "__unlabelled__"
DISAGREE = "__disagree__"


def _swatch(rgb, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(*rgb))
    p.setPen(QColor(0, 0, 0, 90))
    p.drawRoundedRect(0, 0, size - 1, size - 1, 3, 3)
    p.end()
    return QIcon(pm)


class ImageListModel(QAbstractTableModel):
    """Rows are the project's images, in project order.

    Signals
    -------
    thumbnail_failed(str, str)
        An image id and the reason its thumbnail (so the image) could not be read.
    """

    thumbnail_failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._project = None
        self._ids: list[str] = []
        self._thumbs: dict[str, QPixmap] = {}
        self._requested: set[str] = set()
        self._errors: dict[str, str] = {}
        self._predictions: dict[str, tuple[str, float]] = {}
        self._queue: dict[str, tuple[int, float, str]] = {}
        self._cache = None
        self._pool = job_pool(self, 2)
        self._signals = ThumbSignals(self)
        self._signals.done.connect(self._on_thumb_done)
        self._signals.failed.connect(self._on_thumb_failed)

    # ---------------------------------------------------------- project
    def set_project(self, project) -> None:
        self.beginResetModel()
        self._project = project
        self._ids = [r.id for r in project.images] if project is not None else []
        self._thumbs.clear()
        self._requested.clear()
        self._errors.clear()
        self._predictions.clear()
        self._cache = None
        if project is not None:
            try:
                from gusa_core.imageio import DownsampleCache

                self._cache = DownsampleCache(project.cache_dir)
            except Exception:
                self._cache = None
        self.endResetModel()

    def project(self):
        return self._project

    def ids(self) -> list[str]:
        return list(self._ids)

    def row_of(self, image_id: str) -> int:
        try:
            return self._ids.index(image_id)
        except ValueError:
            return -1

    def refresh(self, image_id: str | None = None) -> None:
        """Re-read one row (or every row) from the project."""
        if image_id is None:
            if self._ids:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self._ids) - 1, len(_HEADERS) - 1))
            return
        row = self.row_of(image_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(_HEADERS) - 1))

    def add_row(self, image_id: str) -> None:
        if image_id in self._ids:
            return
        n = len(self._ids)
        self.beginInsertRows(QModelIndex(), n, n)
        self._ids.append(image_id)
        self.endInsertRows()

    def remove_row(self, image_id: str) -> None:
        row = self.row_of(image_id)
        if row < 0:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._ids[row]
        self._thumbs.pop(image_id, None)
        self.endRemoveRows()

    # ------------------------------------------------------ predictions
    def set_predictions(self, predictions: dict[str, tuple[str, float]] | None) -> None:
        """Show predicted classes: ``{image_id: (label, probability)}`` (``None`` clears)."""
        self._predictions = dict(predictions or {})
        self.refresh()

    def set_queue(self, queue) -> None:
        """The annotate-next queue: a sequence of ``(image_id, score, reason)``, best first (``None`` clears)."""
        self._queue = {str(i): (rank, float(score), str(reason)) for rank, (i, score, reason) in enumerate(queue or (), 1)}
        self.refresh()

    def queue_rank(self, image_id: str) -> int | None:
        entry = self._queue.get(image_id)
        return None if entry is None else entry[0]

    def prediction(self, image_id: str) -> tuple[str, float] | None:
        return self._predictions.get(image_id)

    def disagrees(self, image_id: str) -> bool:
        """Whether the prediction differs from the image's (non-empty) label."""
        pred = self._predictions.get(image_id)
        if pred is None or self._project is None:
            return False
        label = self._project.image(image_id).label
        return label is not None and pred[0] != label

    # ------------------------------------------------------- thumbnails
    def thumbnail(self, image_id: str) -> QPixmap | None:
        return self._thumbs.get(image_id)

    def error(self, image_id: str) -> str | None:
        """Why an image could not be read (from its thumbnail job), if it could not."""
        return self._errors.get(image_id)

    def set_error(self, image_id: str, reason: str | None) -> None:
        if reason is None:
            self._errors.pop(image_id, None)
        else:
            self._errors[image_id] = reason
        self.refresh(image_id)

    def request_thumbnail(self, image_id: str) -> None:
        if image_id in self._requested or self._project is None:
            return
        self._requested.add(image_id)
        self._pool.start(ThumbJob(self._signals, image_id, self._project.image_path(image_id), self._cache,
                                 (THUMB_SIZE.width() * 2, THUMB_SIZE.height() * 2)))

    def _on_thumb_done(self, image_id: str, qimg: QImage) -> None:
        pm = QPixmap.fromImage(qimg).scaled(THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self._thumbs[image_id] = pm
        self._errors.pop(image_id, None)
        self.refresh(image_id)

    def _on_thumb_failed(self, image_id: str, reason: str) -> None:
        self._errors[image_id] = reason
        self.refresh(image_id)
        self.thumbnail_failed.emit(image_id, reason)

    # -------------------------------------------------------- Qt model
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(_HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return _TIPS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self._project is None:
            return None
        image_id = self._ids[index.row()]
        try:
            rec = self._project.image(image_id)
        except KeyError:
            return None
        col = index.column()
        if role == ID_ROLE:
            return image_id
        colors = self._project.class_colors
        error = self._errors.get(image_id)
        if col == COL_THUMB:
            if role == Qt.ItemDataRole.DecorationRole:
                pm = self._thumbs.get(image_id)
                if pm is None and error is None:
                    self.request_thumbnail(image_id)
                return pm
            if role == Qt.ItemDataRole.DisplayRole and error is not None:
                return "⚠"
            if role == SORT_ROLE:
                return index.row()
        elif col == COL_NAME:
            if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
                return image_id
            if role == SORT_ROLE:
                return image_id.lower()
            if role == Qt.ItemDataRole.ForegroundRole and error is not None:
                return QBrush(QColor(211, 47, 47))
            if role == Qt.ItemDataRole.ToolTipRole:
                tip = str(self._project.image_path(image_id))
                return f"{tip}\nCannot read this image: {error}" if error else tip
        elif col == COL_CLASS:
            label = rec.label
            suggested = getattr(rec, "suggested", None) if label is None else None
            if role == Qt.ItemDataRole.DisplayRole:
                return label or (f"{suggested}?" if suggested else "—")
            if role == Qt.ItemDataRole.DecorationRole and (label or suggested) in colors:
                return _swatch(colors[label or suggested])
            if role == Qt.ItemDataRole.ToolTipRole and suggested:
                return f"Unlabelled; a model suggested {suggested}. Press its number key to accept it."
            if role == Qt.ItemDataRole.FontRole and suggested:
                f = QFont()
                f.setItalic(True)
                return f
            if role == Qt.ItemDataRole.ForegroundRole:
                if label is None:
                    return QBrush(QColor(140, 140, 140))
                return QBrush(QColor(*colors[label]).darker(125)) if label in colors else None
            if role == Qt.ItemDataRole.FontRole and label is not None:
                f = QFont()
                f.setBold(True)
                return f
            if role == SORT_ROLE:
                classes = list(self._project.classes)
                return classes.index(label) if label in classes else len(classes)
        elif col == COL_ROI:
            slide = rec.extra.get("slide") if rec.extra.get("kind") == "slide" else None
            has = rec.mask is not None or bool(slide and slide.get("regions"))
            source = getattr(rec, "mask_source", None)
            if role == Qt.ItemDataRole.DisplayRole:
                if slide is not None:
                    return "▦ ✓" if has else "▦"
                return ("✓" if source in (None, "painted") else "✓*") if has else ""
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignCenter)
            if role == Qt.ItemDataRole.ToolTipRole:
                if slide is not None:
                    return "Whole-slide image with painted class regions" if has else "Whole-slide image, no regions painted yet"
                extra = {"accepted": " (a model's suggestion, accepted)", "edited": " (a model's suggestion, edited)"}.get(source, "")
                return f"Has an RoI mask{extra}" if has else "No RoI mask"
            if role == SORT_ROLE:
                return 0 if has else 1
        elif col == COL_PRED:
            pred = self._predictions.get(image_id)
            if role == Qt.ItemDataRole.DisplayRole:
                return f"{pred[0]} {pred[1]:.0%}" if pred else ""
            if role == Qt.ItemDataRole.DecorationRole and pred and pred[0] in colors:
                return _swatch(colors[pred[0]])
            if role == Qt.ItemDataRole.BackgroundRole and self.disagrees(image_id):
                return QBrush(QColor(255, 205, 210))
            if role == Qt.ItemDataRole.ForegroundRole and self.disagrees(image_id):
                return QBrush(QColor(183, 28, 28))
            if role == Qt.ItemDataRole.ToolTipRole and pred:
                extra = f" — disagrees with the label {rec.label}" if self.disagrees(image_id) else ""
                return f"Predicted {pred[0]} ({pred[1]:.1%}){extra}"
            if role == SORT_ROLE:
                return -(pred[1]) if pred else 1.0
        elif col == COL_NEXT:
            entry = self._queue.get(image_id)
            if role == Qt.ItemDataRole.DisplayRole:
                return f"{entry[0]}" if entry else ""
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignCenter)
            if role == Qt.ItemDataRole.ToolTipRole and entry:
                return f"Next to annotate: #{entry[0]}, {entry[2]} (uncertainty {entry[1]:.2f})"
            if role == SORT_ROLE:
                return entry[0] if entry else 1 << 30
        return None


class ImageFilterProxy(QSortFilterProxyModel):
    """Filters rows by class (or unlabelled / disagreeing) and by name text."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._class = ALL
        self._text = ""
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def _refilter(self, change) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def set_class_filter(self, value: str) -> None:
        self._refilter(lambda: setattr(self, "_class", value))

    def class_filter(self) -> str:
        return self._class

    def set_text_filter(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        model: ImageListModel = self.sourceModel()
        project = model.project()
        if project is None:
            return False
        image_id = model.ids()[source_row]
        if self._text and self._text not in image_id.lower():
            return False
        if self._class == ALL:
            return True
        label = project.image(image_id).label
        if self._class == UNLABELLED:
            return label is None
        if self._class == DISAGREE:
            return model.disagrees(image_id)
        return label == self._class


class ImageListPanel(QWidget):
    """Filter controls above a sortable table of the project's images.

    Signals
    -------
    image_selected(str)
        The user selected an image (by click or keyboard).
    columns_changed()
        The Prediction or Next column appeared or went: :meth:`wanted_width` changed.
    """

    image_selected = Signal(str)
    context_menu_requested = Signal(str, QPoint)
    columns_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = ImageListModel(self)
        self.proxy = ImageFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Show only images of one class")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name…")
        self.search.setClearButtonEnabled(True)
        self.count_label = QLabel()
        self.count_label.setStyleSheet("color: palette(mid);")

        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # project order until the user sorts
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(THUMB_SIZE.height() + 6)
        self.view.setIconSize(THUMB_SIZE)
        self.view.setShowGrid(False)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_view_context_menu)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(COL_THUMB, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(COL_THUMB, THUMB_SIZE.width() + 10)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_CLASS, 84), (COL_ROI, 34), (COL_PRED, 96), (COL_NEXT, 40)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, width)
        header.setHighlightSections(False)
        header.setMinimumSectionSize(28)
        self.view.setColumnHidden(COL_PRED, True)  # shown once there are predictions
        self.view.setColumnHidden(COL_NEXT, True)  # shown once there is a queue

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.class_combo, 1)
        top.addWidget(self.search, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count_label)

        self.class_combo.currentIndexChanged.connect(self._on_class_combo_changed)
        self.search.textChanged.connect(self._on_search_changed)
        self.view.selectionModel().currentRowChanged.connect(self._on_view_current_changed)
        for sig in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset, self.proxy.layoutChanged):
            sig.connect(self._update_count)
        self.model.dataChanged.connect(self._update_count)  # a label or a mask changed: the "labelled" count too
        self._update_count()

    # ---------------------------------------------------------- project
    def set_project(self, project) -> None:
        self.model.set_project(project)
        self._fill_class_combo(project)
        self._update_count()

    def _fill_class_combo(self, project) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", ALL)
        if project is not None:
            for name in project.classes:
                self.class_combo.addItem(_swatch(project.class_colors.get(name, (128, 128, 128))), name, name)
        self.class_combo.addItem("Unlabelled", UNLABELLED)
        self.class_combo.addItem("Prediction ≠ label", DISAGREE)
        self.class_combo.blockSignals(False)
        self.proxy.set_class_filter(ALL)

    def set_queue(self, queue) -> None:
        """Show the annotate-next rank: ``[(image_id, score, reason)]``, best first (``None`` hides the column)."""
        self.model.set_queue(queue)
        self.view.setColumnHidden(COL_NEXT, not queue)
        self.proxy.invalidate()
        self.columns_changed.emit()

    def wanted_width(self) -> int:
        """The width at which every shown column and about twelve characters of a name fit."""
        header = self.view.horizontalHeader()
        cols = sum(header.sectionSize(c) for c in (COL_THUMB, COL_CLASS, COL_ROI, COL_PRED, COL_NEXT)
                   if not self.view.isColumnHidden(c))
        return cols + self.fontMetrics().horizontalAdvance("invasive_0001") + 40

    def refresh_classes(self, project) -> None:
        """The project's classes changed (renamed, added, recoloured): refill the filter, redraw the rows."""
        self._fill_class_combo(project)
        self.refresh()

    def set_class_filter(self, value: str) -> None:
        i = self.class_combo.findData(value)
        if i >= 0:
            self.class_combo.setCurrentIndex(i)

    def set_predictions(self, predictions) -> None:
        """``{image_id: (label, probability)}``; rows whose prediction differs from the label are marked."""
        self.model.set_predictions(predictions)
        self.view.setColumnHidden(COL_PRED, not predictions)
        self.columns_changed.emit()
        self.proxy.invalidate()

    def refresh(self, image_id: str | None = None) -> None:
        self.model.refresh(image_id)
        self._update_count()

    # -------------------------------------------------------- selection
    def visible_ids(self) -> list[str]:
        """Image ids in the order shown (sorted and filtered)."""
        return [self.proxy.index(r, 0).data(ID_ROLE) for r in range(self.proxy.rowCount())]

    def select_image(self, image_id: str | None) -> bool:
        """Make ``image_id`` the current row (without emitting ``image_selected``)."""
        if image_id is None:
            return False
        row = self.model.row_of(image_id)
        if row < 0:
            return False
        pidx = self.proxy.mapFromSource(self.model.index(row, COL_NAME))
        if not pidx.isValid():
            return False
        self.view.blockSignals(True)
        sm = self.view.selectionModel()
        sm.blockSignals(True)
        self.view.setCurrentIndex(pidx)
        sm.blockSignals(False)
        self.view.blockSignals(False)
        self.view.viewport().update()
        self.view.scrollTo(pidx)
        return True

    def neighbour_id(self, image_id: str | None, step: int) -> str | None:
        """The image ``step`` rows after (or before) ``image_id`` in the shown order."""
        ids = self.visible_ids()
        if not ids:
            return None
        if image_id not in ids:
            return ids[0] if step > 0 else ids[-1]
        i = ids.index(image_id) + step
        return ids[i] if 0 <= i < len(ids) else None

    def _on_view_current_changed(self, current, previous) -> None:
        if current.isValid():
            self.image_selected.emit(current.data(ID_ROLE))

    def _on_view_context_menu(self, pos) -> None:
        idx = self.view.indexAt(pos)
        if idx.isValid():
            self.context_menu_requested.emit(idx.data(ID_ROLE), self.view.viewport().mapToGlobal(pos))

    def _on_class_combo_changed(self, index: int) -> None:
        self.proxy.set_class_filter(self.class_combo.itemData(index) or ALL)
        self._update_count()

    def _on_search_changed(self, text: str) -> None:
        self.proxy.set_text_filter(text)
        self._update_count()

    def _update_count(self, *args) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        project = self.model.project()
        labelled = sum(1 for r in project.images if r.label is not None) if project is not None else 0
        masked = sum(1 for r in project.images if r.mask is not None) if project is not None else 0
        text = f"{shown} of {total} images" if shown != total else f"{total} images"
        self.count_label.setText(f"{text} · {labelled} labelled · {masked} with RoI")
