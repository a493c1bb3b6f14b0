"""Argument types shared by the verbs."""

from __future__ import annotations

import argparse

from ..checkpoint import MAX_INPUT_SIDE

MAX_IMAGE_SIDE = 16384

__all__ = ["parse_size", "parse_image_size"]


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``512x384``) into ``(width, height)``; both divisible by 16."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 512x384, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"input size {text} must be positive and divisible by 16 (stride of bp)")
    if max(w, h) > MAX_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"input size {text} is too large (at most {MAX_INPUT_SIDE} a side)")
    return w, h


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into ``(width, height)``, any positive size."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 512x384, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"image size {text} is too small (at least 16x16)")
    if max(w, h) > MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"image size {text} is too large (at most {MAX_IMAGE_SIDE} a side)")
    return w, h
