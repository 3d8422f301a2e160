"""What every request handler shares: settings, the recipient key, the enrolled devices, the
clock, the library and fleet board, the audit trail and one archive client.

The web server runs handlers on many threads: the audit trail is one SQLite connection behind a
lock (each append reads the chain's head, so appends must not interleave), and boto3 clients are
thread-safe, so one is made on first use and shared.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from appliance.gateway.settings import GatewayConfig
from appliance.gateway.state import GatewayState

if TYPE_CHECKING:
    from appliance.portal.fleet import FleetBoard
    from appliance.portal.library import Library


@dataclass
class PortalContext:
    config: GatewayConfig          # appliance.gateway.settings: .gateway .archive .pacs .portal
    identity: object               # the recipient private key (opens cards and vault data keys)
    devices: list                  # enrolled device public keys (gateway.verify.enrolled_devices)
    clock: Callable[[], float]     # time.time in production; tests pass a controllable clock
    library: "Library" = None      # appliance/portal/library.py (built by open_context)
    fleet: "FleetBoard" = None     # appliance/portal/fleet.py (built by open_context)
    _state: GatewayState | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _client: object = field(default=None, repr=False)

    def audit(self, event: str, actor: str, **details) -> None:
        """One entry in the gateway's audit chain (event names: appliance/gateway/state.py)."""
        with self._lock:
            if self._state is None:
                self._state = GatewayState(self.config.gateway.data, self.clock, shared=True)
            self._state.audit(event, actor, **details)

    def archive_client(self):
        with self._lock:
            if self._client is None:
                from appliance.archive.s3 import connect
                self._client = connect(self.config.archive)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._state is not None:
                self._state.close()
                self._state = None


def open_context(config: GatewayConfig, identity, devices: list, clock: Callable[[], float] = time.time
                 ) -> PortalContext:
    """The context with its library and fleet board (both fetch from the archive lazily, on
    first use, never here)."""
    from appliance.portal.fleet import FleetBoard
    from appliance.portal.library import Library

    context = PortalContext(config, identity, devices, clock)
    context.library = Library(context.archive_client, config.archive.bucket, devices, identity, clock=clock)
    context.fleet = FleetBoard(context)
    return context


def portal() -> PortalContext:
    """The current app's context (inside a request)."""
    from flask import current_app
    return current_app.extensions["portal"]
