"""``gusa init``: create a project from a folder of images."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    s = sub.add_parser("init", help="create a project from a folder of images and whole-slide images (BACH layout understood)")
    s.add_argument("dir", type=Path, help="project folder to create")
    s.add_argument("--images", type=Path, required=True, help="image folder (BACH Photos/ or a flat folder); slides (SVS, pyramidal TIFF) become slides")
    s.add_argument("--masks", type=Path, default=None, help="folder of masks named after the image stems")
    s.set_defaults(func=run)


def run(args) -> int:
    from ..project import Project

    from ..project.slides import slide_ids

    project = Project.from_folder(args.dir, args.images, masks=args.masks)
    n_slides = len(slide_ids(project))
    n_lab = sum(1 for r in project.images if r.label is not None)
    n_mask = sum(1 for r in project.images if r.mask is not None)
    print(f"project {project.folder}: {len(project.images)} images, {n_lab} labelled, {n_mask} with RoI masks"
          + (f", {n_slides} whole-slide images (paint their regions in the app)" if n_slides else ""))
    return 0
