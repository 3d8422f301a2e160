"""The `[worklist]` section: where the RIS's Modality Worklist is and who we are to it.

The RIS must know our calling AE title and schedule the steps for `station_ae` with modality
`modality` (XC: external-camera photography), see docs/worklist.md. An empty `host` means no
worklist: the service refuses to run and the kiosk offers manual entry only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# sockaddr_un.sun_path is 108 bytes with its terminating NUL.
SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class WorklistSettings:
    host: str = ""                  # the RIS (worklist SCP); empty: no worklist configured
    port: int = 104
    called_ae: str = "ANY-SCP"      # the RIS's AE title
    calling_ae: str = "APPLIANCE"   # ours, as the RIS knows us
    station_ae: str = "APPLIANCE"   # Scheduled Station AE Title the RIS schedules this room's steps for
    modality: str = "XC"
    refresh_s: float = 60.0         # the service queries this often (and when the kiosk asks)
    timeout_s: float = 10.0         # connect, association and each answer
    # The channel to the kiosk; empty means <data.dir>/run/worklist.sock (Settings.worklist_socket).
    socket: Path | None = None

    def __post_init__(self):
        # Messages start with the key, so the config loader can say where it came from.
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        for name in ("called_ae", "calling_ae", "station_ae"):
            check_ae_title(name, getattr(self, name))
        if not (self.modality.isascii() and self.modality.isupper() and len(self.modality) <= 16):
            raise ValueError(f"modality must be a DICOM code string such as XC, got {self.modality!r}")
        for name in ("refresh_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if self.socket is not None and len(str(self.socket).encode()) > SOCKET_PATH_MAX:
            raise ValueError(f"socket path is longer than {SOCKET_PATH_MAX} bytes: {self.socket}")


def check_ae_title(name: str, value: str) -> None:
    """An AE title: 1-16 printable ASCII characters, no backslash, not only spaces (PS3.5 AE)."""
    if not (value.strip() and len(value) <= 16 and value.isascii() and value.isprintable()
            and "\\" not in value):
        raise ValueError(f"{name} must be 1 to 16 printable ASCII characters (an AE title), got {value!r}")
