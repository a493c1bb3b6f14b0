"""Exception types of gusa_core: every message names the file concerned."""

from __future__ import annotations

import os

__all__ = [
    "GusaError",
    "ImageReadError",
    "MaskError",
    "ProjectError",
    "CheckpointError",
    "ModelOutputError",
    "ProjectLockedError",
    "ReadOnlyProjectError",
    "NewerVersionError",
]


class GusaError(Exception):
    """Base class of every error gusa_core raises on purpose."""


class _FileError(GusaError):
    """An error about one file: ``path`` and ``reason`` are kept as attributes."""

    what = "file"

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot read {self.what} {self.path!s}: {reason}")


class ImageReadError(_FileError):
    """An image file that cannot be read (missing, empty, truncated, not an image)."""

    what = "image"


class MaskError(_FileError):
    """A mask that cannot be read or does not fit its image."""

    what = "mask"


class CheckpointError(_FileError):
    """A model file or run folder that is not what it claims to be."""

    what = "model"


class ProjectError(_FileError):
    """A project folder or manifest that cannot be opened or saved."""

    what = "project"


class ModelOutputError(CheckpointError):
    """A model that produced NaN or infinite probabilities: a fault of the model file, never a prediction."""


class NewerVersionError(ProjectError):
    """A manifest written by a newer version: it is neither read nor overwritten."""


class ProjectLockedError(ProjectError):
    """Another writer holds the project (``holder`` describes it: host, pid, since)."""

    def __init__(self, path: str | os.PathLike, reason: str, holder=None):
        self.holder = holder
        super().__init__(path, reason)


class ReadOnlyProjectError(ProjectError):
    """A change asked of a project opened read-only."""
