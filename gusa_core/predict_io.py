"""compat shim for app/, removed once app moves: the writers live in :mod:`gusa_core.inference.outputs`."""

from .inference.outputs import overlay_attention, unique_stem, write_attention_png, write_predictions_csv

__all__ = ["overlay_attention", "unique_stem", "write_attention_png", "write_predictions_csv"]
