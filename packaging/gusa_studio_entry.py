"""Frozen entry point of the desktop application (PyInstaller)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # DataLoader workers re-enter the frozen executable
    from app.main import main

    sys.exit(main())
