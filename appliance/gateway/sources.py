"""Where the gateway finds recordings: each source names its recordings by a `location` (opaque
uids only, never a subject ID) and hands out a local path to the encrypted vault, its signed
manifest beside it. Nothing here decides whether a recording is genuine (verify.py does).

- DirectorySource: an export directory (appliance/storage/export.py's format: `<recording
  uid>.mp4.vault` and `.manifest`, at any depth, e.g. `<session uid>/` as on the appliance).
- ArchiveSource: the archive bucket (issue 11's layout, the pinned interface).
A recording whose manifest is not there yet is not offered: it is still being copied.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import ContextManager, Iterator, Protocol

from appliance.archive.settings import ArchiveSettings
from appliance.errors import ApplianceError
from appliance.storage.database import make_private_dir
from appliance.storage.layout import RECORDING_SUFFIX

MANIFEST_SUFFIX = ".manifest"


class SourceUnavailable(ApplianceError):
    """A source cannot be read now (the archive is down, refuses our keys): try next pass."""

    exit_code = 1


class Source(Protocol):
    name: str      # for the operator: which source could not be read

    def locations(self) -> Iterator[str]:
        """Every recording the source holds now, by location."""

    def fetch(self, location: str) -> ContextManager[Path]:
        """A local path to the vault (its `.manifest` beside it) for the duration of the block."""


class DirectorySource:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._prefix = f"dir:{self.root.resolve()}/"
        self.name = f"directory {self.root}"

    def locations(self) -> Iterator[str]:
        try:
            found = sorted(self.root.rglob(f"*{RECORDING_SUFFIX}"))
        except OSError as error:   # the stick was pulled
            raise SourceUnavailable(error.strerror or str(error)) from None
        for path in found:
            # a hidden name is a copy still being written (appliance/atomic.py)
            if path.is_file() and not path.name.startswith(".") and path.with_name(path.name + MANIFEST_SUFFIX).is_file():
                yield self._prefix + path.relative_to(self.root).as_posix()

    @contextlib.contextmanager
    def fetch(self, location: str) -> Iterator[Path]:
        path = self.root / location.removeprefix(self._prefix)
        if not (path.is_file() and path.with_name(path.name + MANIFEST_SUFFIX).is_file()):
            # gone since it was listed (the stick was pulled): not a reason to refuse it for good
            raise SourceUnavailable(f"{path.name} is no longer there")
        yield path


class ArchiveSource:
    """The archive bucket (issue 11's layout): `<device id>/<session uid>/<recording uid>.mp4.vault`
    and its `.manifest`. Each pass lists the bucket (the state database skips what is settled,
    without downloading it); a recording whose manifest is not there yet waits for the next pass.
    `fetch` downloads both objects (ciphertext and signed manifest only) into a private
    directory under `work_dir` and removes them after. The connection is the archive's own
    (appliance/archive/s3.py: its credentials file, its wording of failures)."""

    def __init__(self, settings: ArchiveSettings, work_dir: Path):
        self.settings = settings
        self.work_dir = Path(work_dir)
        self._prefix = f"s3:{settings.bucket}/"
        self.name = f"archive {settings.endpoint} bucket {settings.bucket}"
        self._client = None

    def locations(self) -> Iterator[str]:
        keys = set()
        with self._unavailable_as_one_line("list the bucket"):
            for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket):
                keys.update(item["Key"] for item in page.get("Contents", []))
        for key in sorted(keys):
            if key.endswith(RECORDING_SUFFIX) and key.count("/") == 2 and key + MANIFEST_SUFFIX in keys:
                yield self._prefix + key

    @contextlib.contextmanager
    def fetch(self, location: str) -> Iterator[Path]:
        key = location.removeprefix(self._prefix)
        make_private_dir(self.work_dir)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as directory:
            path = Path(directory) / key.rsplit("/", 1)[1]
            with self._unavailable_as_one_line("download a recording"):
                for suffix in ("", MANIFEST_SUFFIX):
                    self._s3().download_file(self.settings.bucket, key + suffix, str(path) + suffix)
            yield path

    @contextlib.contextmanager
    def _unavailable_as_one_line(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        from appliance.archive import s3

        try:
            yield
        except s3.ArchiveError as error:   # e.g. the credentials file became unreadable
            raise SourceUnavailable(str(error)) from None
        except (ClientError, BotoCoreError) as error:
            raise SourceUnavailable(str(s3.classify(error, doing))) from None

    def _s3(self):
        from appliance.archive import s3   # boto3 only when there is an archive

        if self._client is None:
            self._client = s3.connect(self.settings)
        return self._client
