"""Scoring a trained run on a labelled project: :mod:`.evaluate` computes the
metrics (through :mod:`gusa_core.metrics`), :mod:`.report` renders them as a
self-contained HTML page.
"""

from .evaluate import evaluate_run, format_result

__all__ = ["evaluate_run", "format_result"]
