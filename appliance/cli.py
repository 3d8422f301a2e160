"""The `appliance` command: one entry point, one subcommand group per concern.

Each group lives in appliance/commands/<group>.py and exposes `register(subparsers)`, which
adds its parser and sets `func(args) -> int`. Heavy imports happen inside the functions, so
`appliance --help` stays fast and a group's missing optional part cannot break the others.
Exit codes: 0 ok, 1 integrity failure, 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from appliance import __version__
from appliance.errors import ApplianceError

# Command groups, in the order `appliance --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "appliance.commands.demo",
    "appliance.commands.keys",
    "appliance.commands.vault",
    "appliance.commands.bench",
    "appliance.commands.audit",
    "appliance.commands.run",
    "appliance.commands.doctor",
    "appliance.commands.export",
    "appliance.commands.record",
    "appliance.commands.controller",
    "appliance.commands.kiosk",
    "appliance.commands.archive",
    "appliance.commands.worklist",
    "appliance.commands.gateway",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="appliance", description="Treatment recording appliance.")
    parser.add_argument("--version", action="version", version=f"appliance {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ApplianceError as error:
        print(f"appliance: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("appliance: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
