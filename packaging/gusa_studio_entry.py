"""Frozen entry point of the desktop application (PyInstaller)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # DataLoader workers re-enter the frozen executable
    if "--self-test" in sys.argv[1:]:
        # Straight to the self-test: it must prove the bundle works even if the
        # argument parsing of app.main changes.
        from app.shell.self_test import run_self_test

        sys.exit(run_self_test())
    from app.main import main

    sys.exit(main())
