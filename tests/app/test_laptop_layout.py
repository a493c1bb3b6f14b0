"""The window on a laptop screen: docks never overlap, the status bar covers nothing, the frame fits the screen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("layout_probe.py")
ROOT = Path(__file__).resolve().parents[2]


def _intersects(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _inside(inner, outer) -> bool:
    ix, iy, iw, ih = inner
    ox, oy, ow, oh = outer
    return ix >= ox and iy >= oy and ix + iw <= ox + ow and iy + ih <= oy + oh


@pytest.fixture(scope="module", params=[(1366, 768), (1024, 700)], ids=["1366x768", "1024x700"])
def layouts(request, tmp_path_factory):
    from gusa_core.demo import write_demo_project

    w, h = request.param
    folder = write_demo_project(tmp_path_factory.mktemp("laptop") / "demo", per_class=1, unlabelled=1, size=(96, 72)).folder
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(PROBE), str(w), str(h), str(folder)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith("LAYOUT ")]
    assert proc.returncode == 0 and line, proc.stdout + proc.stderr
    return (w, h), json.loads(line[0][len("LAYOUT "):])


STATES = ["annotate", "training", "runs", "review", "grown", "reset"]


@pytest.mark.parametrize("state", STATES)
def test_frame_fits_the_screen(layouts, state):
    (w, h), out = layouts
    lay = out[state]
    assert lay["available"] == [0, 0, w, h]
    assert _inside(lay["frame"], lay["available"]), lay["frame"]


@pytest.mark.parametrize("state", STATES)
def test_no_two_shown_docks_overlap_and_the_status_bar_covers_nothing(layouts, state):
    _, out = layouts
    lay = out[state]
    shown = [d for d in lay["docks"] if d["shown"] and not d["floating"]]
    assert shown
    for i, a in enumerate(shown):
        for b in shown[i + 1:]:
            assert not _intersects(a["rect"], b["rect"]), (a, b)
        assert not _intersects(a["rect"], lay["status_bar"]), (a, lay["status_bar"])
        assert not _intersects(a["rect"], lay["central"]), (a, lay["central"])
    assert not _intersects(lay["central"], lay["status_bar"])


@pytest.mark.parametrize("state", ["training", "runs", "review"])
def test_the_opened_dock_is_in_front_and_the_others_stay_one_tab_away(layouts, state):
    _, out = layouts
    lay = out[state]
    by_title = {d["title"]: d for d in lay["docks"]}
    assert by_title[state.capitalize()]["shown"]
    for title in ("Annotate", "Training", "Runs", "Review")[: STATES.index(state) + 1]:
        d = by_title[title]
        assert d["shown"] or any(by_title[t]["shown"] for t in d["tabbed_with"] if t in by_title), d
        w, h = layouts[0]
        assert d["min"][1] < h / 2  # a tall form scrolls; it never makes the dock taller than the screen


def test_reset_layout_docks_everything_back(layouts):
    _, out = layouts
    lay = out["reset"]
    titles = {d["title"] for d in lay["docks"]}
    assert titles == {"Images", "Annotate"}
    assert not any(d["floating"] for d in lay["docks"])
