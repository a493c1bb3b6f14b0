"""The canvas's mask layer: tiles edited in place equal tiles built afresh, at every sampling and outline width."""

from __future__ import annotations

import numpy as np
import pytest

from app.workspace.canvas_layers import MaskLayer


def _tiles(layer):
    """The built (not empty) tiles in the layer's cache: ``{key: pixels}``."""
    return {key: entry[1].copy() for key in layer._cache.keys()  # noqa: SLF001 - the cache under test
            if isinstance(entry := layer._cache.peek(key), tuple)}


@pytest.mark.parametrize("k, e", [(1, 1), (1, 3), (2, 2), (4, 1)])
def test_in_place_edits_match_a_fresh_build(qtbot, k, e):
    rng = np.random.default_rng(k * 10 + e)
    labels = np.zeros((700, 900), np.uint8)
    labels[100:400, 150:600] = 1
    labels[300:650, 500:880] = 3
    layer = MaskLayer()
    layer.set_labels(labels)
    layer.set_colors({1: (0, 160, 0), 3: (255, 200, 0)})
    rows, cols = -(-900 // (256 * k)), -(-700 // (256 * k))
    for row in range(cols):
        for col in range(rows):
            layer._tile(k, e, col, row)  # noqa: SLF001 - fill the cache as a paint would
    for _ in range(5):  # strokes: rectangles of new values, some across tile borders and the image edge
        r0, c0 = int(rng.integers(0, 690)), int(rng.integers(0, 890))
        r1, c1 = min(700, r0 + int(rng.integers(1, 120))), min(900, c0 + int(rng.integers(1, 120)))
        labels[r0:r1, c0:c1] = rng.choice([0, 1, 3])
        layer.update((r0, c0, r1, c1))
    edited = _tiles(layer)
    assert edited
    fresh = MaskLayer()
    fresh.set_labels(labels)
    fresh.set_colors({1: (0, 160, 0), 3: (255, 200, 0)})
    for (kk, ee, col, row), arr in edited.items():
        entry = fresh._tile(kk, ee, col, row)  # noqa: SLF001
        np.testing.assert_array_equal(arr, entry[1], err_msg=f"tile {(kk, ee, col, row)}")
    # an outline where the value changes, the fill inside, nothing outside
    tile = fresh._tile(1, 1, 0, 0)[1]  # noqa: SLF001
    assert tile[0, 0] == 0 and (tile >> 24).max() == 255 and ((tile >> 24) == 100).any()
