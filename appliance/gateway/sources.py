"""Where the gateway finds recordings: each source names its recordings by a `location` (opaque
uids only, never a subject ID) and hands out a local path to the encrypted vault, its signed
manifest beside it. Nothing here decides whether a recording is genuine (verify.py does).

- DirectorySource: an export directory (appliance/storage/export.py's format: `<recording
  uid>.mp4.vault` and `.manifest`, at any depth, e.g. `<session uid>/` as on the appliance).
- The archive bucket (issue 11's layout) joins here once its client is merged.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ContextManager, Iterator, Protocol

from appliance.storage.layout import RECORDING_SUFFIX


class Source(Protocol):
    def locations(self) -> Iterator[str]:
        """Every recording the source holds now, by location."""

    def fetch(self, location: str) -> ContextManager[Path]:
        """A local path to the vault (its `.manifest` beside it) for the duration of the block."""


class DirectorySource:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._prefix = f"dir:{self.root.resolve()}/"

    def locations(self) -> Iterator[str]:
        for path in sorted(self.root.rglob(f"*{RECORDING_SUFFIX}")):
            if path.is_file() and not path.name.startswith("."):   # skip a copy still being written
                yield self._prefix + path.relative_to(self.root).as_posix()

    def owns(self, location: str) -> bool:
        return location.startswith(self._prefix)

    @contextlib.contextmanager
    def fetch(self, location: str) -> Iterator[Path]:
        yield self.root / location.removeprefix(self._prefix)
