"""The `[portal]` section of the gateway's settings file (appliance/gateway/settings.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PortalSettings:
    listen: str = "0.0.0.0:8443"          # host:port, an IPv6 host in brackets: "[::]:8443"; port 0: any free one
    certificate: Path | None = None       # the clinic's PEM certificate (chain) ...
    key: Path | None = None               # ... and its key; neither: a self-signed pair in <data>/portal/
    idle_minutes: float = 15.0            # a session ends after this long without a request
    lockout_failures: int = 5             # this many wrong passwords in a row lock the account ...
    lockout_minutes: float = 15.0         # ... for this long

    def __post_init__(self):
        host, _, port = self.listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be host:port with a port from 0 to 65535, got {self.listen!r}")
        if host.startswith("[") != host.endswith("]"):
            raise ValueError(f"listen: an IPv6 address goes in brackets, got {self.listen!r}")
        if (self.certificate is None) != (self.key is None):
            raise ValueError("certificate and key go together: set both, or neither for a self-signed pair")
        for name in ("idle_minutes", "lockout_minutes", "lockout_failures"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def url_host(self) -> str:
        """The host as it goes in a URL (an IPv6 address in brackets)."""
        try:
            return f"[{self.host}]" if ipaddress.ip_address(self.host).version == 6 else self.host
        except ValueError:
            return self.host
