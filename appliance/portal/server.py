"""`appliance gateway serve`: the portal over HTTPS with cheroot (CherryPy's threaded WSGI
server) and the stdlib ssl module through cheroot's builtin adapter.

TLS only: the one listener speaks HTTPS, and cheroot answers a plain-HTTP request on it with a
400 saying so (no redirect listener: a clinic bookmarks https://). Threads, not async: a video
response streams for minutes, each on its own thread, decrypting as it goes.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from appliance.errors import BadInput
from appliance.gateway.settings import GatewayConfig
from appliance.portal import tls

log = logging.getLogger("appliance.portal")

THREADS = 16         # concurrent requests: a few clinicians' players (a few ranges each) and pages
SHUTDOWN_S = 5.0     # how long a stop waits for requests in flight


def usable_pair(config: GatewayConfig) -> tuple[Path, Path]:
    """The certificate and key to serve with, checked (BadInput, one line, when unusable)."""
    certificate, key = tls.certificate_pair(config.portal, config.gateway.data)
    tls.check_pair(certificate, key)
    return certificate, key


def build_server(app, config: GatewayConfig, pair: tuple[Path, Path]) -> wsgi.Server:
    """The server, bound and ready to serve (BadInput for an address it cannot listen on)."""
    settings, (certificate, key) = config.portal, pair
    server = wsgi.Server((settings.host, settings.port), app, numthreads=THREADS,
                         server_name="portal", shutdown_timeout=SHUTDOWN_S)
    server.ssl_adapter = BuiltinSSLAdapter(str(certificate), str(key))
    # Python's default today, pinned here so no library or runtime change can lower it.
    server.ssl_adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        server.prepare()
    except OSError as error:
        raise BadInput(f"portal: cannot listen on {settings.listen}: {error.strerror or error}") from None
    log.info("portal certificate SHA-256 fingerprint %s", tls.fingerprint(certificate))
    return server


def serve(server: wsgi.Server, config: GatewayConfig, stop: threading.Event) -> None:
    """Serves until `stop` is set, then lets requests in flight finish (up to SHUTDOWN_S)."""
    worker = threading.Thread(target=server.serve, name="portal-server", daemon=True)
    worker.start()
    port = server.bind_addr[1]   # the bound one: `listen` may ask for port 0 (any free port)
    log.info("portal listening on https://%s:%d/", config.portal.url_host, port)
    while not stop.wait(1.0) and worker.is_alive():
        pass
    server.stop()
    worker.join(SHUTDOWN_S)
    if not stop.is_set():
        raise RuntimeError("the portal server stopped on its own")

