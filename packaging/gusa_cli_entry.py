"""Frozen entry point of the ``gusa`` command line (PyInstaller)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from gusa_core.cli.main import main

    sys.exit(main())
