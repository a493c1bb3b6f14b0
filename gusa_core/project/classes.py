"""A project's classes: names (compared ignoring case, spaces and underscores) and display colours."""

from __future__ import annotations

from typing import Any

from .. import DEFAULT_CLASS_COLORS
from .importer import class_key as _class_key

__all__ = ["ClassesMixin", "parse_color"]

_PALETTE = [
    (156, 39, 176), (0, 150, 136), (121, 85, 72), (96, 125, 139), (255, 235, 59),
    (63, 81, 181), (205, 220, 57), (233, 30, 99), (0, 188, 212), (255, 87, 34),
]  # fmt: skip


def parse_color(value: Any) -> tuple[int, int, int]:
    """``(R, G, B)`` from three integers 0..255 (ValueError otherwise)."""
    try:
        r, g, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"a colour is three integers (R, G, B), got {value!r}") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError(f"colour components must be 0..255, got {value!r}")
    return r, g, b


class ClassesMixin:
    """The class methods of :class:`~gusa_core.project.Project` (which owns ``classes``,
    ``class_colors``, ``images``, ``_lock``, ``_touch`` and ``events``)."""

    def _check_new_class(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a class name must be a non-empty string, got {name!r}")
        if any(_class_key(c) == _class_key(name) for c in self.classes):
            raise ValueError(f"class {name!r} already exists")

    def _default_color(self, name: str, colors: dict | None) -> tuple[int, int, int]:
        if colors and name in colors:
            return parse_color(colors[name])
        if name in DEFAULT_CLASS_COLORS:
            return tuple(DEFAULT_CLASS_COLORS[name])  # type: ignore[return-value]
        used = set(self.class_colors.values()) if hasattr(self, "class_colors") else set()
        for c in _PALETTE:
            if c not in used:
                return c
        return _PALETTE[len(used) % len(_PALETTE)]

    def class_key(self, name: str) -> str | None:
        """The project class matching ``name`` ignoring case, spaces and underscores, or None."""
        key = _class_key(name)
        return next((c for c in self.classes if _class_key(c) == key), None)

    def add_class(self, name: str, color: tuple[int, int, int] | None = None) -> None:
        """Add a class at the end of `classes`."""
        self._check_editable()
        with self._lock:
            self._check_new_class(name)
            self.class_colors[name] = parse_color(color) if color is not None else self._default_color(name, None)
            self.classes.append(name)
            self._touch()
        self.events.classes_changed.emit()

    def remove_class(self, name: str) -> None:
        """Remove a class; images labelled with it become unlabelled."""
        self._check_editable()
        relabelled: list[str] = []
        with self._lock:
            if name not in self.classes:
                raise KeyError(f"no class {name!r} in the project")
            self.classes.remove(name)
            self.class_colors.pop(name, None)
            for rec in self.images:
                if rec.label == name:
                    rec.label = None
                    relabelled.append(rec.id)
                if rec.suggested == name:
                    rec.suggested = None
            self._touch()
        self.events.classes_changed.emit()
        for image_id in relabelled:
            self.events.label_changed.emit(image_id, None)

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class, keeping its place and colour; labels follow."""
        self._check_editable()
        if old == new:
            return
        relabelled: list[str] = []
        with self._lock:
            if old not in self.classes:
                raise KeyError(f"no class {old!r} in the project")
            others = [c for c in self.classes if c != old]
            if not isinstance(new, str) or not new.strip():
                raise ValueError(f"a class name must be a non-empty string, got {new!r}")
            if any(_class_key(c) == _class_key(new) for c in others):
                raise ValueError(f"class {new!r} already exists")
            self.classes[self.classes.index(old)] = new
            self.class_colors = {(new if k == old else k): v for k, v in self.class_colors.items()}
            for rec in self.images:
                if rec.label == old:
                    rec.label = new
                    relabelled.append(rec.id)
                if rec.suggested == old:
                    rec.suggested = new
            self._touch()
        self.events.classes_changed.emit()
        for image_id in relabelled:
            self.events.label_changed.emit(image_id, new)

    def set_class_color(self, name: str, color: tuple[int, int, int]) -> None:
        """Change a class's display colour."""
        self._check_editable()
        with self._lock:
            if name not in self.classes:
                raise KeyError(f"no class {name!r} in the project")
            color = parse_color(color)
            if self.class_colors.get(name) == color:
                return
            self.class_colors[name] = color
            self._touch()
        self.events.classes_changed.emit()
