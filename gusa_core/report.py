"""compat shim for app/, removed once app moves: the report lives in :mod:`gusa_core.evaluation.report`."""

from .evaluation.report import write_html_report

__all__ = ["write_html_report"]
