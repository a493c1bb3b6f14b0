"""Reading a folder of images into a project: BACH's layout, its ground-truth CSV, masks by stem.

:meth:`gusa_core.project.Project.from_folder` calls :func:`scan_folder`, which
finds everything and checks it *before* anything is written: every problem
(an unknown class in the CSV, a mask of the wrong size, an unreadable file) is
collected and raised as one :class:`~gusa_core.errors.ProjectError`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import GusaError, ProjectError
from ..imageio import IMAGE_SUFFIXES, image_size
from ..slides import MRXS_INDEX, SLIDE_SUFFIXES, mrxs_owner

__all__ = ["GROUND_TRUTH_CSV", "class_key", "scan_folder", "read_ground_truth", "check_images", "list_inputs"]

#: Suffixes a folder import takes: images and whole-slide images (``.svs``, ``.ndpi``, ``.scn``, ``.mrxs``, ...).
INPUT_SUFFIXES = tuple(dict.fromkeys(IMAGE_SUFFIXES + SLIDE_SUFFIXES))

#: BACH's label file (rows ``filename,class``, no header).
GROUND_TRUTH_CSV = "microscopy_ground_truth.csv"


def class_key(name: str) -> str:
    """Comparison key of a class name: ``In situ``, ``In_Situ`` and ``InSitu`` agree."""
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


def list_inputs(folder: str | os.PathLike, *, recursive: bool = False, skipped: list[str] | None = None) -> list[Path]:
    """The images and whole-slide images of a folder, sorted by path.

    Files with a suffix of :data:`INPUT_SUFFIXES` (any case), hidden files and folders left out.
    A MIRAX slide is its ``.mrxs`` file: the data folder beside it (same stem, holding
    ``Slidedat.ini``) is never walked, so its files are not taken for images. An ``.mrxs``
    whose data folder is missing is not taken; ``skipped``, when given, receives why.

    Raises
    ------
    ProjectError
        ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ProjectError(folder, "folder does not exist" if not folder.exists() else "is not a folder")
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and mrxs_owner(here / d) is None) if recursive else []
        for name in files:
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in INPUT_SUFFIXES:
                continue
            if path.suffix.lower() == ".mrxs" and not (path.with_suffix("") / MRXS_INDEX).is_file():
                if skipped is not None:
                    skipped.append(f"{path}: MIRAX slide without its data folder {path.stem}/ (holding {MRXS_INDEX})")
                continue
            found.append(path)
    return sorted(found, key=lambda p: p.as_posix())


def scan_folder(
    src: str | os.PathLike,
    classes: Iterable[str],
    masks: str | os.PathLike | None = None,
    warnings: list[str] | None = None,
) -> tuple[list[tuple[Path, str | None]], list[str | None], dict[int, Path]]:
    """Find the images of ``src`` with their labels, and their masks in ``masks``.

    ``warnings``, when given, receives what does not stop the import but
    would harm the results: one file found twice with contradicting labels,
    a CSV that labels one file twice with different classes.

    Returns
    -------
    found : list of (Path, str or None)
        Each image and the label its class folder gives.
    labels : list of str or None
        The final label of each image (the CSV overrides the folder).
    mask_files : dict of int to Path
        Index into ``found`` → its mask file (size already checked).

    Raises
    ------
    ProjectError
        ``src`` or ``masks`` is missing, no image was found, or problems were found.
    """
    src = Path(src)
    if not src.is_dir():
        raise ProjectError(src, "image folder does not exist" if not src.exists() else "is not a folder")
    classes = list(classes)
    problems: list[str] = []
    by_key = {class_key(c): c for c in classes}

    warnings = [] if warnings is None else warnings
    skipped: list[str] = []
    found: list[tuple[Path, str | None]] = [(p, None) for p in list_inputs(src, skipped=skipped)]
    for sub in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = by_key.get(class_key(sub.name))
        if label is not None and mrxs_owner(sub) is None:  # a MIRAX data folder named like a class is not one
            found.extend((p, label) for p in list_inputs(sub, recursive=True, skipped=skipped))
    if not found:
        if skipped:
            raise ProjectError(src, "no images found:\n" + "\n".join(f"  - {p}" for p in skipped))
        raise ProjectError(src, f"no images found (looked for {', '.join(INPUT_SUFFIXES)} files and class sub-folders)")
    warnings.extend(skipped)
    csv_labels = read_ground_truth(src, by_key, problems, warnings)
    labels: list[str | None] = []
    first: dict[Path, tuple[Path, str | None]] = {}
    for path, label in found:
        name = path.name.casefold()
        labels.append(csv_labels.get(name, csv_labels.get(path.stem.casefold(), label)))
        key = path.resolve()
        if key in first and first[key][1] != labels[-1]:
            warnings.append(
                f"{path} is the same file as {first[key][0]} but their labels contradict "
                f"({labels[-1] or 'unlabelled'} vs {first[key][1] or 'unlabelled'}): the same image would train as both"
            )
        first.setdefault(key, (path, labels[-1]))

    mask_files: dict[int, Path] = {}
    if masks is not None:
        mask_dir = Path(masks)
        if not mask_dir.is_dir():
            raise ProjectError(mask_dir, "mask folder does not exist" if not mask_dir.exists() else "is not a folder")
        available = {p.name.casefold(): p for p in mask_dir.iterdir() if p.is_file()}
        for i, (path, _) in enumerate(found):
            stem = path.stem.casefold()
            mpath = available.get(f"{stem}.png") or available.get(f"{stem}_mask.png")
            if mpath is None or mpath == path:
                continue
            try:
                isize, msize = image_size(path), image_size(mpath)
            except GusaError as exc:
                problems.append(str(exc))
                continue
            if isize != msize:
                problems.append(f"mask {mpath} is {msize[0]}x{msize[1]} but its image {path} is {isize[0]}x{isize[1]}")
                continue
            mask_files[i] = mpath
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ProjectError(src, f"{len(problems)} problem(s) found, nothing was written:\n{listing}")

    return found, labels, mask_files


def read_ground_truth(
    src: Path, by_key: dict[str, str], problems: list[str], warnings: list[str] | None = None
) -> dict[str, str]:
    """Labels from ``microscopy_ground_truth.csv`` in ``src`` or its parent: casefolded name → class.

    A file labelled twice with different classes goes to ``warnings`` (the later line wins).
    """
    csv_path = None
    for folder in (src, src.parent):
        if folder.is_dir():
            csv_path = next((p for p in folder.iterdir() if p.name.casefold() == GROUND_TRUTH_CSV and p.is_file()), None)
        if csv_path is not None:
            break
    if csv_path is None:
        return {}
    labels: dict[str, str] = {}
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        problems.append(f"cannot read {csv_path}: {exc}")
        return {}
    for n, row in enumerate(rows, start=1):
        if len(row) < 2:
            problems.append(f"{csv_path} line {n}: expected 'filename,class', got {','.join(row)!r}")
            continue
        name, cls = row[0].strip(), row[1].strip()
        label = by_key.get(class_key(cls))
        if label is None:
            if n == 1 and Path(name).suffix.lower() not in INPUT_SUFFIXES:
                continue  # a header row such as "filename,class"
            problems.append(f"{csv_path} line {n}: unknown class {cls!r} (classes: {', '.join(by_key.values())})")
            continue
        key = Path(name).name.casefold()
        if key in labels and labels[key] != label and warnings is not None:
            warnings.append(f"{csv_path} line {n}: {name} is labelled {label} but an earlier line says {labels[key]}: kept {label}")
        labels[key] = label
        labels.setdefault(Path(name).stem.casefold(), label)
    return labels


def check_images(project) -> list[str]:
    """Problems of a project's images that would harm training: missing, empty or unreadable files.

    Reads each image's header only (not the pixels). Returns one message per
    problem, naming the file; the import warnings of
    `~gusa_core.project.Project.from_folder` come first.
    """
    out = list(getattr(project, "import_warnings", []))
    for rec in project.images:
        path = project.image_path(rec.id)
        if rec.extra.get("kind") == "slide":
            continue  # a whole-slide image: its headers were read when it was added
        try:
            if path.stat().st_size == 0:
                out.append(f"{path}: empty file (0 bytes)")
                continue
            image_size(path)
        except OSError as exc:
            out.append(f"{path}: cannot read ({exc.strerror or exc})")
        except GusaError as exc:
            out.append(f"{path}: unreadable ({getattr(exc, 'reason', exc)})")
    return out
