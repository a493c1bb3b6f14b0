"""Persistent user settings (QSettings): recent projects, window layout, tool state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings

__all__ = ["ORGANIZATION", "APPLICATION", "settings", "recent_projects", "add_recent_project", "MAX_RECENT"]

ORGANIZATION = "GuSA"
APPLICATION = "GuSA Studio"
MAX_RECENT = 8


def settings() -> QSettings:
    """The application's settings store (INI format, per user)."""
    if not QCoreApplication.organizationName():
        QCoreApplication.setOrganizationName(ORGANIZATION)
        QCoreApplication.setApplicationName(APPLICATION)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def recent_projects() -> list[str]:
    """Recently opened project folders, most recent first, existing ones only."""
    value = settings().value("recent_projects", [])
    if isinstance(value, str):
        value = [value]
    return [p for p in (value or []) if Path(p).is_dir()]


def add_recent_project(folder: str | Path) -> list[str]:
    """Put ``folder`` at the top of the recent list and return the list."""
    folder = str(Path(folder).resolve())
    items = [folder] + [p for p in recent_projects() if p != folder]
    items = items[:MAX_RECENT]
    s = settings()
    s.setValue("recent_projects", items)
    s.sync()
    return items
