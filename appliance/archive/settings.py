"""The archive's settings: the `[archive]` section of the config file (each field is a key of
that name). The clinic's S3-compatible object store the sealed recordings are copied to; the
gateway reads the same section.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

RETENTION_MODES = ("COMPLIANCE", "GOVERNANCE")
PART_MIB_RANGE = (8, 16)


@dataclass(frozen=True)
class ArchiveSettings:
    endpoint: str = ""                  # e.g. https://s3.clinic.example:9000; empty: no archive
    bucket: str = ""                    # must have Object Lock enabled (unless retention_days = 0)
    region: str = "us-east-1"
    # An AWS-style shared credentials file (INI: [default] with aws_access_key_id and
    # aws_secret_access_key), mode 0600; read by the archive only (s3.read_credentials).
    credentials: Path | None = None
    retention_days: int = 3650          # Object Lock retain-until = upload + this; 0: no retention
    retention_mode: str = "COMPLIANCE"  # COMPLIANCE: nobody can shorten it; GOVERNANCE: privileged users can
    legal_hold: bool = False            # a legal hold on every object as well, until lifted by hand
    keep_local_days: float = 30.0       # archived local copies may be reclaimed after this long
    warn_after_hours: float = 24.0      # warn when the oldest unarchived recording is older
    max_mbps: float = 0.0               # upload bandwidth limit in megabits per second; 0: none
    part_mib: int = 8                   # multipart part size
    # The uploader's CPU budget in percent of one core (0: none; at most 100 per core). With the
    # idle scheduling class it keeps a full-speed upload off a 30 fps recording on two cores
    # (docs/archive.md, Benchmark).
    cpu_percent: float = 50.0

    def __post_init__(self):
        # Messages start with the key, so the config file and the CLI can each say where it came from.
        if self.retention_mode not in RETENTION_MODES:
            raise ValueError(f"retention_mode must be one of {', '.join(RETENTION_MODES)}, "
                             f"got {self.retention_mode!r}")
        low, high = PART_MIB_RANGE
        if not low <= self.part_mib <= high:
            raise ValueError(f"part_mib must be between {low} and {high}, got {self.part_mib}")
        for name in ("retention_days", "keep_local_days", "max_mbps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        cores = os.cpu_count() or 1
        if not 0 <= self.cpu_percent <= 100 * cores:
            raise ValueError(f"cpu_percent must be between 0 and {100 * cores} ({cores} cores), "
                             f"got {self.cpu_percent}")
        if not self.warn_after_hours > 0:
            raise ValueError(f"warn_after_hours must be greater than 0, got {self.warn_after_hours}")
        if self.endpoint and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must start with http:// or https://, got {self.endpoint!r}")
        if self.endpoint and not self.bucket:
            raise ValueError("bucket must be set when endpoint is")

    @property
    def configured(self) -> bool:
        return bool(self.endpoint)

    @property
    def part_size(self) -> int:
        return self.part_mib * 1024 * 1024
