"""`appliance bench NAME`: benchmarks that print JSON figures.

Each benchmark lives in bench/<name>.py and exposes `add_arguments(parser)` and
`run(args) -> dict`; the dict is printed as JSON. Every benchmark runs the old design's
pipeline (or the nearest raw primitive) side by side and reports ratios.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

# name -> module; each module documents what it measures.
BENCHMARKS: dict[str, str] = {
    "vault": "bench.vault",
    "controller": "bench.controller",
    "record": "bench.record",
    "e2e": "bench.e2e",
    "kiosk-preview": "bench.kiosk_preview",
    "archive": "bench.archive",
    "gateway": "bench.gateway",
    "portal": "bench.portal",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print JSON figures")
    names = parser.add_subparsers(dest="benchmark", metavar="NAME", parser_class=type(parser))
    names.required = True
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        sub = names.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(func=lambda args, module=module: _run(module, args))


def _run(module, args) -> int:
    figures = {"machine": {"cores": os.cpu_count()}, **module.run(args)}
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
