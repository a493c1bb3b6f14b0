"""``gusa info``: describe a model variant against the paper's Table I."""

from __future__ import annotations

from .. import DEFAULT_INPUT_SIZE
from ..models_registry import DEFAULT_VARIANT, VARIANT_NAMES
from .options import parse_size, strict_json


def add_parser(sub) -> None:
    s = sub.add_parser("info", help="describe a model variant: parameter counts against the paper's Table I")
    s.add_argument("--variant", choices=VARIANT_NAMES, default=DEFAULT_VARIANT)
    s.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE, metavar="WxH")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=run)


def run(args) -> int:
    from ..models import info_dict

    info = info_dict(args.variant, input_size=args.input_size)
    if args.json:
        print(strict_json(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>26}: {value}")
    return 0
