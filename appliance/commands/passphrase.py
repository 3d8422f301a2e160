"""Passphrases for the CLI: from --passphrase-file, else a terminal prompt (never echoed,
never an argument, so it stays out of shell history and the process list)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from appliance.errors import BadInput


def from_file(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise BadInput(f"cannot read passphrase file {path}: {error.strerror}") from None
    passphrase = data.rstrip(b"\r\n")
    if not passphrase:
        raise BadInput(f"passphrase file {path} is empty")
    return passphrase


def obtain(path: Path | None, *, confirm: bool = False) -> bytes:
    if path is not None:
        return from_file(path)
    if not sys.stdin.isatty():
        raise BadInput("no passphrase: give --passphrase-file or run on a terminal")
    passphrase = getpass.getpass("Passphrase: ").encode()
    if confirm and getpass.getpass("Repeat passphrase: ").encode() != passphrase:
        raise BadInput("the two passphrases differ")
    if not passphrase:
        raise BadInput("empty passphrase")
    return passphrase
