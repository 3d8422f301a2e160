"""Looking for plaintext video where the portal could have left it: its config and data dirs, its
TMPDIR, what is new in /dev/shm since it started, and every regular file it holds open (a temp
file unlinked at once is found there). The scan proves itself first: a run of real served
plaintext planted in each place must be found, or the scan's "none" means nothing.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

SHARED_MEMORY = Path("/dev/shm")
# Byte runs in every recording's plaintext (the init segment's brand, a moof's first child)
# that chance does not produce in ciphertext.
MARKERS = (b"ftypiso5", b"\x00\x00\x00\x10mfhd\x00\x00\x00\x00")


def shared_memory_entries() -> set[Path]:
    return set(SHARED_MEMORY.iterdir())


class PlaintextScan:
    def __init__(self, directories: list[Path], pid: int, shared_memory_before: set[Path]):
        self._directories, self._pid, self._before = directories, pid, shared_memory_before

    def places(self) -> list[Path]:
        """Every file to look into now."""
        roots = self._directories + sorted(shared_memory_entries() - self._before)
        files = []
        for root in roots:
            files += [root] if root.is_file() else [path for path in root.rglob("*") if path.is_file()]
        descriptors = Path(f"/proc/{self._pid}/fd")
        for descriptor in descriptors.iterdir():
            try:
                if descriptor.is_file():     # a regular file (sockets and pipes are not)
                    files.append(descriptor)
            except OSError:
                continue     # closed meanwhile
        return files

    def found(self) -> tuple[list[str], int]:
        """(files holding plaintext video, how many files were read)."""
        found, read = [], 0
        for path in self.places():
            try:
                data = path.read_bytes()
            except OSError:
                continue     # vanished between listing and reading
            read += 1
            if any(marker in data for marker in MARKERS):
                found.append(os.path.realpath(path) if path.parent.name == "fd" else str(path))
        return found, read

    def self_test(self, plaintext_run: bytes, plant_in: list[Path]) -> dict:
        """Plants `plaintext_run` in each of `plant_in` and in /dev/shm: how many were found."""
        if not any(marker in plaintext_run for marker in MARKERS):
            raise ValueError("the planted run holds no marker: it cannot test the scan")
        planted = [place / f"plaintext-self-test-{uuid.uuid4().hex}" for place in plant_in + [SHARED_MEMORY]]
        try:
            for path in planted:
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    out.write(plaintext_run)
            found, _ = self.found()
        finally:
            for path in planted:
                path.unlink(missing_ok=True)
        return {"planted": len(planted), "found": sum(str(path) in found for path in planted)}
