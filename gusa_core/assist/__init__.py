"""Assisted annotation: suggested RoI masks and what to annotate next."""

from .suggest import DEFAULT_MIN_ISLAND_FRACTION, suggest_mask

__all__ = ["suggest_mask", "DEFAULT_MIN_ISLAND_FRACTION"]
