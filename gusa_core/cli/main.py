"""The ``gusa`` command: the parser and :func:`main`.

Each verb lives in its own module (``add_parser`` + ``run``); the verbs import
the heavy library modules (torch) inside ``run`` so that ``gusa --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import GusaError
from . import demo, evaluate, export, info, info_slide, init, predict, rank, suggest, train

__all__ = ["main", "build_parser"]

_VERBS = (demo, init, info, info_slide, train, predict, evaluate, export, suggest, rank)


def build_parser() -> argparse.ArgumentParser:
    """The ``gusa`` argument parser with every verb."""
    p = argparse.ArgumentParser(prog="gusa", description="GuSA Studio command line: guided soft attention for H&E histopathology.")
    p.add_argument("--version", action="version", version=f"gusa {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb in _VERBS:
        verb.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``gusa`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GusaError as exc:
        print(f"gusa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gusa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
