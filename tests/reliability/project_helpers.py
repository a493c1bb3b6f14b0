"""Tiny projects for the project reliability tests (PNG images of a few pixels)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from gusa_core.project import Project


def write_png(path: Path, shape=(12, 16), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full(shape + (3,), value, np.uint8)
    image[::3, ::2] = 200  # some texture
    assert cv2.imwrite(str(path), image)
    return path


def make_project(folder: Path, *, n: int = 3, labels=("Normal", "Benign", None), masked: int = 1) -> Project:
    """A saved project of ``n`` images in ``folder/images`` with the first ``masked`` of them masked."""
    project = Project.create(folder)
    for i in range(n):
        path = write_png(folder / "images" / f"img{i}.png", value=60 + 40 * i)
        project.add_image(path, label=labels[i % len(labels)])
    for rec in project.images[:masked]:
        mask = np.zeros((12, 16), np.uint8)
        mask[2:8, 3:10] = 255
        project.save_mask(rec.id, mask)
    project.save()
    return project


def edit_manifest(folder: Path, change) -> None:
    """Rewrite ``folder/gusa-project.json`` with ``change(data)`` applied (a hostile or mutated manifest)."""
    path = folder / "gusa-project.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data))
