"""A self-contained HTML report of an evaluation: one file, figures inlined.

The figures are drawn with matplotlib's Agg backend (no display, no Qt) and
embedded as base64 PNGs, so the report can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..imageio import read_image, resize_image

__all__ = [
    "write_html_report",
    "render_html_report",
    "format_number",
    "roc_figure_png",
    "confusion_figure_png",
    "reliability_figure_png",
]

#: Misclassified images shown with a thumbnail (the rest are listed without).
MAX_THUMBNAILS = 40
_THUMB_WIDTH = 160


def format_number(value, digits: int = 4) -> str:
    """Format a metric the same way in every table of the report (``—`` for undefined)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.{digits}f}"


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _new_figure(size):
    # The object-oriented API with the Agg canvas: never touches pyplot's global state or a GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def roc_figure_png(result: Mapping, *, class_colors: Mapping | None = None) -> bytes:
    """ROC curve of every class (one-vs-rest) and the macro average, as a PNG.

    The macro curve is the mean of the per-class TPRs interpolated on a common
    FPR grid (the usual macro-average ROC). ``class_colors`` maps a class name
    to its ``(R, G, B)`` (0..255), e.g. the project's ``class_colors``, so the
    report draws each class in the colour the app shows it in; classes it
    does not name get matplotlib's default cycle.
    """
    class_colors = class_colors or {}
    fig = _new_figure((5.2, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    grid = np.linspace(0.0, 1.0, 201)
    tprs = []
    for name in result["class_names"]:
        curve = result["roc"].get(name)
        if not curve:
            continue
        auc = result["auc_per_class"].get(name)
        rgb = class_colors.get(name)
        color = tuple(int(v) / 255 for v in rgb) if rgb is not None else None
        ax.plot(curve["fpr"], curve["tpr"], lw=1.5, color=color, label=f"{name} (AUC {format_number(auc)})")
        tprs.append(np.interp(grid, curve["fpr"], curve["tpr"]))
    if tprs:
        ax.plot(grid, np.mean(tprs, axis=0), "k--", lw=2, label=f"macro (AUC {format_number(result.get('auc_macro'))})")
    ax.plot([0, 1], [0, 1], color="0.7", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title="ROC curves")
    ax.legend(loc="lower right", fontsize=8)
    return _figure_png(fig)


def confusion_figure_png(result: Mapping) -> bytes:
    """The row-normalised confusion matrix as an annotated heatmap PNG."""
    names = list(result["class_names"])
    conf = np.asarray(result["confusion"], dtype=float)
    n = len(names)
    fig = _new_figure((1.2 + 1.0 * n, 1.0 + 0.9 * n))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(conf, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{conf[i, j]:.2f}", ha="center", va="center", color="white" if conf[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=30, ha="right")
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (rows normalised)")
    return _figure_png(fig)


def reliability_figure_png(calibration: Mapping) -> bytes:
    """Reliability diagram before and after temperature scaling, as a PNG.

    ``calibration`` is ``result["calibration"]`` of
    :func:`gusa_core.evaluation.evaluate_run`: per confidence bin, the
    accuracy (bars) against the bin's mean confidence; the diagonal is a
    perfectly calibrated model. The bars' width shows the bin, a bin without
    a prediction is left empty.
    """
    fig = _new_figure((5.2, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    styles = (("before", "before T", "#d62728", 0.35), ("after", "after T", "#1f77b4", 0.6))
    for key, label, color, alpha in styles:
        summary = calibration.get(key)
        if not summary:
            continue
        rel = summary["reliability"]
        edges = np.asarray(rel["edges"], dtype=float)
        acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], dtype=float)
        conf = np.array([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
        width = np.diff(edges)
        ok = np.isfinite(acc)
        ax.bar(edges[:-1][ok], acc[ok], width=width[ok], align="edge", color=color, alpha=alpha, edgecolor=color,
               label=f"{label}: ECE {format_number(summary['ece'], 3)}")
        ax.plot(conf[ok], acc[ok], "o-", color=color, ms=3, lw=1)
    ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--", label="perfect calibration")
    t = calibration.get("temperature")
    t_text = ", ".join(f"{v:.2f}" for v in t) if isinstance(t, list) else f"{float(t):.2f}"
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="confidence (top class)", ylabel="accuracy",
           title=f"Reliability diagram (T = {t_text})")
    ax.legend(loc="upper left", fontsize=8)
    return _figure_png(fig)


def _thumbnail_uri(path: str | None) -> str | None:
    if not path:
        return None
    try:
        import cv2

        image = read_image(path)
        h, w = image.shape[:2]
        thumb = resize_image(image, (_THUMB_WIDTH, max(1, round(h * _THUMB_WIDTH / w))))
        ok, buf = cv2.imencode(".png", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR))
        return _png_data_uri(buf.tobytes()) if ok else None
    except Exception:  # a thumbnail is a nicety: a missing image leaves the row without one
        return None


def _table(header: list[str], rows: list[list[str]], *, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}.figs img{max-width:48%;vertical-align:top;margin-right:1%}
.summary td{font-variant-numeric:tabular-nums}.note{color:#666;font-size:.9em}
"""


def render_html_report(result: Mapping, *, title: str = "GuSA evaluation", run_info: Mapping | None = None,
                       class_colors: Mapping | None = None) -> str:
    """Build the report's HTML text (see :func:`write_html_report`)."""
    names = list(result["class_names"])
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if run_info:
        rows = [[esc(str(k)), esc(str(v))] for k, v in run_info.items()]
        parts.append(_table(["", ""], rows, cls="info"))

    parts.append("<h2>Summary</h2>")
    summary = [
        ["images", str(int(result.get("n_images", 0)))],
        ["accuracy", format_number(result.get("accuracy"))],
        ["ROC AUC (macro)", format_number(result.get("auc_macro"))],
        ["RoI mean IoU (τ = 0.5)", format_number(result.get("miou"))],
    ]
    parts.append(_table(["metric", "value"], [[esc(k), v] for k, v in summary], cls="summary"))
    cal = result.get("calibration")
    if cal:
        parts.append("<h2>Calibration</h2>")
        rows = [[esc(label), format_number((cal.get("before") or {}).get(key)), format_number((cal.get("after") or {}).get(key))]
                for label, key in (("ECE (15 bins)", "ece"), ("Brier score", "brier"), ("NLL", "nll"))]
        parts.append(_table(["metric", "before temperature scaling", "after"], rows, cls="calibration"))

    parts.append("<h2>Per class</h2>")
    counts = np.asarray(result.get("confusion_counts") or np.zeros((len(names), len(names))), dtype=int)
    conf = np.asarray(result["confusion"], dtype=float)
    rows = []
    for i, name in enumerate(names):
        support = int(counts[i].sum()) if counts.size else 0
        rows.append([esc(name), str(support), format_number(result["auc_per_class"].get(name)), format_number(conf[i, i])])
    parts.append(_table(["class", "images", "ROC AUC", "recall (diagonal)"], rows, cls="per-class"))
    for note in result.get("notes") or []:
        parts.append(f'<p class="note">{esc(note)}</p>')

    parts.append("<h2>Figures</h2><div class=\"figs\">")
    parts.append(f'<img alt="ROC curves" src="{_png_data_uri(roc_figure_png(result, class_colors=class_colors))}">')
    parts.append(f'<img alt="confusion matrix" src="{_png_data_uri(confusion_figure_png(result))}">')
    if cal:
        parts.append(f'<img alt="reliability diagram" src="{_png_data_uri(reliability_figure_png(cal))}">')
    parts.append("</div>")

    parts.append("<h2>Confusion matrix (rows: true class, columns: predicted; row-normalised)</h2>")
    rows = [[esc(name)] + [format_number(v, 2) for v in conf[i]] for i, name in enumerate(names)]
    parts.append(_table(["true \\ predicted"] + names, rows, cls="confusion"))

    predictions = {p["id"]: p for p in result.get("predictions") or []}
    wrong = list(result.get("misclassified") or [])
    parts.append(f"<h2>Misclassified images ({len(wrong)})</h2>")
    if wrong:
        rows = []
        for k, image_id in enumerate(wrong):
            p = predictions.get(image_id, {"id": image_id})
            thumb = _thumbnail_uri(p.get("path")) if k < MAX_THUMBNAILS else None
            img = f'<img alt="{esc(str(image_id))}" src="{thumb}">' if thumb else ""
            probs = p.get("probs") or {}
            top = format_number(probs.get(p.get("predicted")), 3) if p.get("predicted") in probs else "—"
            rows.append([esc(str(image_id)), img, esc(str(p.get("label"))), esc(str(p.get("predicted"))), top])
        parts.append(_table(["image", "thumbnail", "true", "predicted", "p(predicted)"], rows, cls="misclassified"))
    else:
        parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html_report(
    path: str | os.PathLike, result: Mapping, *, title: str = "GuSA evaluation", run_info: Mapping | None = None,
    class_colors: Mapping | None = None,
) -> Path:
    """Write one self-contained HTML report of an evaluation, atomically.

    Parameters
    ----------
    path : path-like
        The ``.html`` file to write.
    result : mapping
        The dict of :func:`gusa_core.metrics.evaluate` (or
        :func:`gusa_core.evaluation.evaluate_run`, whose ``predictions`` and
        ``misclassified`` add a table of the misclassified images).
    title : str
    run_info : mapping, optional
        Key/value lines shown under the title (run folder, variant, folds...).
    class_colors : mapping, optional
        Class name -> ``(R, G, B)``: the ROC curves' colours (the project's, as the app draws them).

    Returns
    -------
    Path
    """
    return atomic_write_text(path, render_html_report(result, title=title, run_info=run_info, class_colors=class_colors))
