"""Atomic file creation: a private temp file in the destination directory, renamed into place
only when complete. A failure or a kill leaves either nothing or the old state, never half a
file; the files are 0600 because they hold keys, signatures or plaintext."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from appliance.errors import BadInput


@contextlib.contextmanager
def create_atomically(path: Path, *, overwrite: bool = False):
    """Yields a binary file; on success it becomes `path` (fsynced), on error it vanishes."""
    path = Path(path)
    if not overwrite and path.exists():
        raise BadInput(f"{path} already exists; refusing to overwrite it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise BadInput(f"output directory {directory} does not exist")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    except OSError as error:
        raise BadInput(f"cannot write in {directory}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as temp:
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


def write_atomically(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    with create_atomically(path, overwrite=overwrite) as out:
        out.write(data)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
