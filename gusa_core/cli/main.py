"""The ``gusa`` command: the parser and :func:`main`.

Each verb lives in its own module (``add_parser`` + ``run``); the verbs import
the heavy library modules (torch) inside ``run`` so that ``gusa --help`` is instant.

:func:`main` is the one place that turns a failure into what a user reads:
a :class:`~gusa_core.errors.GusaError` or an operating-system error (disk
full, permission denied, read-only folder, a file where a folder is needed)
becomes one line naming the file and what to do, with exit status 2; any
other exception becomes one line asking to report it, with the traceback
only under ``--debug`` (or ``GUSA_DEBUG=1``). Verbs that print JSON print
their error as one JSON object on stdout instead (see :func:`_fail`).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback

from .. import __version__
from ..errors import GusaError
from . import demo, evaluate, export, info, info_slide, init, predict, predict_slide, rank, suggest, train

__all__ = ["main", "build_parser", "describe_error"]

_VERBS = (demo, init, info, info_slide, train, predict, predict_slide, evaluate, export, suggest, rank)

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free some space and run the command again",
    errno.EDQUOT: "the disk quota is exhausted: free some space and run the command again",
    errno.EACCES: "permission denied: choose a folder you may write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you may write to, or fix its permissions",
    errno.EROFS: "the file system is read-only: choose another output folder",
    errno.ENOTDIR: "a path component is a file, not a folder: choose another path",
    errno.EISDIR: "a folder is in the way where a file is needed: choose another path",
    errno.EEXIST: "a file is in the way: remove it or choose another path",
    errno.ENOENT: "no such file or folder",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``gusa`` argument parser with every verb."""
    p = argparse.ArgumentParser(prog="gusa", description="GuSA Studio command line: guided soft attention for H&E histopathology.")
    p.add_argument("--version", action="version", version=f"gusa {__version__}")
    p.add_argument("--debug", action="store_true", help="print the full traceback of unexpected errors (or set GUSA_DEBUG=1)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for verb in _VERBS:
        verb.add_parser(sub)
    return p


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """The one-line message for ``exc`` and whether it is expected (exit 2) or a bug.

    Returns
    -------
    message : str
    expected : bool
        False for an exception that is neither a GusaError nor an OSError.
    """
    if isinstance(exc, GusaError):
        return str(exc), True
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else None
        hint = _OS_HINTS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
        target = f"{where}: " if where else ""
        detail = f" ({exc.strerror})" if exc.strerror and exc.errno in _OS_HINTS else ""
        return f"{target}{hint}{detail}", True
    if isinstance(exc, MemoryError):
        return "not enough memory: try a smaller batch or input size", True
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"unexpected {type(exc).__name__}{': ' + text if text else ''}", False


def _debug(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("GUSA_DEBUG", "") not in ("", "0")


def _fail(args, exc: BaseException) -> int:
    message, expected = describe_error(exc)
    if not expected:
        message += " — this is a bug; please report it with the command you ran (add --debug for the traceback)"
        if _debug(args):
            traceback.print_exception(exc, file=sys.stderr)
    if getattr(args, "json", None) is True:  # a verb printing JSON to stdout: keep stdout parseable
        sys.stdout.flush()
        print(json.dumps({"error": message, "exit_status": 2}), flush=True)
    print(f"gusa: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run ``gusa`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("gusa: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place a failure becomes a user message
        return _fail(args, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
