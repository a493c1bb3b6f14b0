"""``gusa info-slide``: a whole-slide image's levels, pixel size and objective."""

from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    s = sub.add_parser("info-slide", help="print a slide's levels, microns per pixel and objective power")
    s.add_argument("slide", type=Path, help="SVS, NDPI, MRXS, SCN, pyramidal TIFF, ... (or a flat image)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=run)


def describe(slide) -> dict:
    """What ``info-slide`` prints, as a dict."""
    from ..slides.annotations import label_shape, working_downsample
    from ..slides.tiles import native_magnification

    ds = working_downsample(slide.dimensions, slide.mpp)
    return {
        "file": str(slide.path),
        "backend": slide.backend,
        "vendor": slide.vendor,
        "dimensions": list(slide.dimensions),
        "bounds": list(slide.bounds),
        "mpp": None if slide.mpp is None else list(slide.mpp),
        "objective_power": slide.objective_power,
        "magnification": native_magnification(slide.objective_power, slide.mpp),
        "levels": [
            {"level": i, "width": w, "height": h, "downsample": round(d, 4)}
            for i, ((w, h), d) in enumerate(zip(slide.level_dimensions, slide.level_downsamples))
        ],
        "regions_downsample": ds,
        "regions_size": list(reversed(label_shape(slide.dimensions, ds))),
    }


def run(args) -> int:
    from ..slides import open_slide

    with open_slide(args.slide) as slide:
        info = describe(slide)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    w, h = info["dimensions"]
    mpp = info["mpp"]
    print(f"{info['file']}")
    print(f"  reader     : {info['backend']} ({info['vendor']})")
    print(f"  size       : {w} x {h} px" + (f" ({w * mpp[0] / 1000:.2f} x {h * mpp[1] / 1000:.2f} mm)" if mpp else ""))
    bx, by, bw, bh = info["bounds"]
    if (bw, bh) != (w, h):
        print(f"  scanned    : {bw} x {bh} px at ({bx}, {by})")
    print(f"  MPP        : {mpp[0]:.4f} x {mpp[1]:.4f} µm/px" if mpp else "  MPP        : not recorded (uncalibrated)")
    obj = info["objective_power"]
    mag = info["magnification"]
    print(f"  objective  : {obj:g}x" if obj else (f"  objective  : not recorded (about {mag:.0f}x from the MPP)" if mag else "  objective  : not recorded"))
    print("  levels     :")
    for lev in info["levels"]:
        print(f"    {lev['level']}: {lev['width']} x {lev['height']}  downsample {lev['downsample']:g}")
    rw, rh = info["regions_size"]
    print(f"  regions    : painted at downsample {info['regions_downsample']} ({rw} x {rh} px)")
    return 0
