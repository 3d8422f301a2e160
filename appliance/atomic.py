"""Atomic file writes, the one way the appliance replaces or creates a file: a private temp file
in the destination directory, written, fsynced, renamed into place, then the directory fsynced so
the rename itself survives power loss. A failure or a kill leaves either nothing or the old file,
never half a file; files are 0600 unless asked otherwise (they hold keys, PINs, signatures)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from appliance.errors import BadInput


@contextlib.contextmanager
def create_atomically(path: Path, *, overwrite: bool = False, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yields a binary file (readable too, to verify what was written); when the block ends
    without an error it becomes `path`, durably; on an error it vanishes."""
    path = Path(path)
    if not overwrite and path.exists():
        raise BadInput(f"{path} already exists; refusing to overwrite it")
    directory = path.parent
    if not directory.is_dir():
        raise BadInput(f"output directory {directory} does not exist")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    except OSError as error:
        raise BadInput(f"cannot write in {directory}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w+b") as temp:
            os.fchmod(temp.fileno(), mode)
            yield temp
            temp.flush()
            os.fsync(temp.fileno())
        if overwrite:
            os.replace(temp_name, path)
        else:
            # link() fails if `path` appeared meanwhile, so a concurrent writer is never clobbered.
            try:
                os.link(temp_name, path)
            except FileExistsError:
                raise BadInput(f"{path} already exists; refusing to overwrite it") from None
            os.unlink(temp_name)
        _fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_atomically(path: Path, data: bytes, *, overwrite: bool = False, mode: int = 0o600) -> None:
    with create_atomically(path, overwrite=overwrite, mode=mode) as out:
        out.write(data)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
