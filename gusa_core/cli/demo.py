"""``gusa demo``: write the built-in demo project."""

from __future__ import annotations

from pathlib import Path

from .options import parse_image_size


def add_parser(sub) -> None:
    s = sub.add_parser("demo", help="write the built-in demo project")
    s.add_argument("dir", type=Path, help="folder to create")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--per-class", type=int, default=10, help="labelled images per class")
    s.add_argument("--size", type=parse_image_size, default=(512, 384), metavar="WxH", help="image size")
    s.set_defaults(func=run)


def run(args) -> int:
    from ..demo import write_demo_project

    project = write_demo_project(args.dir, seed=args.seed, per_class=args.per_class, size=args.size, lock="gusa demo")
    project.close()
    print(f"demo project written to {project.folder} ({len(project.images)} images)")
    return 0
