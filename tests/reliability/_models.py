"""Small saved models for the reliability tests (random weights, 64x48 inputs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]
SIZE = (64, 48)


def untrained_run(folder: Path, *, seed: int = 0, folds: int = 1, reinhard: bool = True) -> Path:
    """A finished-looking ``gusa`` run with random weights in ``folder``."""
    from gusa_core.runs import write_untrained_run
    from gusa_core.stain import ReinhardNormalizer

    ref = ReinhardNormalizer.default().to_dict() if reinhard else None
    write_untrained_run(folder, variant="gusa", class_names=CLASSES, input_size=SIZE, folds=folds, seed=seed, reinhard=ref)
    return folder


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_json(path: Path, **changes) -> None:
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(changes)
    path.write_text(json.dumps(meta))


def tiny_images(folder: Path, n: int = 2) -> list[Path]:
    """``n`` small RGB PNGs."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths
