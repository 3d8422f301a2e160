"""The portal for tests: a gateway settings file with a `[portal]` section, accounts added
through the CLI, and the portal run as `appliance gateway serve` (a subprocess, real HTTPS on
127.0.0.1) or in-process (create_app under a controllable clock, for idle expiry).

    from tests.gatewaying import clinic_keys                    # noqa: F401 (fixture)
    from tests.portaling import portal                          # noqa: F401 (fixture)

    def test_x(portal):
        client = portal.client()
        client.log_in(CLINICIAN)
        status, headers, body = client.get("/api/sessions")

`portal` is module-scoped, on a fresh bucket (`portal.bucket`, `portal.s3`): push recordings
into it first (the library reads the bucket when asked), or start your own with `start_portal`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main
from bench.served_portal import Account, ScriptClient
from appliance.gateway.state import GatewayState
from tests.gatewaying import ClinicKeys
from tests.servers import end_process
from tests.servers.seaweedfs import unique_bucket
from tests.waiting import wait_for


CLINICIAN = Account("dr.ito", "clinician", "lidocaine-and-lasers-42")
IT = Account("it.admin", "it", "patch-tuesday-every-day")
READY_TIMEOUT_S = 60.0
LISTENING = re.compile(r"portal listening on https://127\.0\.0\.1:(\d+)/")


def write_portal_config(path: Path, keys: ClinicKeys, data: Path, *, port: int, s3=None, bucket: str = "",
                        portal_extra: str = "") -> Path:
    archive = ""
    if s3 is not None:
        credentials = s3.write_credentials(path.parent / "gateway-s3-credentials")
        archive = f'[archive]\nendpoint = "{s3.endpoint}"\nbucket = "{bucket}"\ncredentials = "{credentials}"\n'
    path.write_text(f"""
[gateway]
identity = "{keys.recipient_key}"
passphrase_file = "{keys.passphrase_file}"
devices = "{keys.devices}"
data = "{data}"
{archive}
[portal]
listen = "127.0.0.1:{port}"
{portal_extra}
""")
    return path


def add_account(config: Path, account: Account) -> None:
    password_file = config.parent / f"password-{account.name}"
    password_file.write_text(account.password + "\n")
    password_file.chmod(0o600)
    # The CLI's own entry point, in this process: a subprocess would add a second of start-up.
    assert main(["gateway", "user", "add", account.name, "--role", account.role,
                 "--password-file", str(password_file), "--config", str(config)]) == 0


class PortalProcess:
    """`appliance gateway serve` on 127.0.0.1; its log (stderr) in `log_path`. The port is the one
    its "portal listening on https://..." line names (the settings may ask for port 0: no race
    between picking a free port and the portal binding it)."""

    def __init__(self, config: Path, data: Path, *, s3=None, bucket: str = ""):
        self.config, self.data, self.s3, self.bucket = config, data, s3, bucket
        self.log_path = config.parent / "portal.log"
        self.process: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> PortalProcess:
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "gateway", "serve",
                                             "--config", str(self.config)], stdout=log, stderr=log)
        finally:
            log.close()
        self.port = int(wait_for(self._listening, READY_TIMEOUT_S, f"the portal to listen ({self.log_path})"))
        return self

    def _listening(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the portal exited with {self.process.returncode}:\n{self.log()}")
        found = LISTENING.search(self.log())
        return found and found.group(1)

    def stop(self) -> None:
        end_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def certificate(self) -> Path:
        return self.data / "portal" / "self-signed.crt"

    def client(self) -> ScriptClient:
        return ScriptClient(self.base_url, self.certificate)

    def audit(self) -> list:
        """The gateway's audit entries, read as the gateway's own status command does."""
        state = GatewayState(self.data)
        try:
            return state.audit_entries()
        finally:
            state.close()


def start_portal(directory: Path, keys: ClinicKeys, *, s3=None, bucket: str = "",
                 accounts=(CLINICIAN, IT), portal_extra: str = "") -> PortalProcess:
    directory.mkdir(parents=True, exist_ok=True)
    config = write_portal_config(directory / "gateway.toml", keys, directory / "data", port=0, s3=s3,
                                 bucket=bucket, portal_extra=portal_extra)
    for account in accounts:
        add_account(config, account)
    return PortalProcess(config, directory / "data", s3=s3, bucket=bucket).start()


@pytest.fixture(scope="module")
def portal(tmp_path_factory, clinic_keys, seaweedfs):
    """The portal over a fresh bucket of the session's SeaweedFS, with CLINICIAN and IT."""
    bucket = seaweedfs.create_bucket(unique_bucket("portal"))
    server = start_portal(tmp_path_factory.mktemp("portal"), clinic_keys, s3=seaweedfs, bucket=bucket)
    yield server
    server.stop()


# -- in-process: the app under a controllable clock (werkzeug's test client) --------------------

class ManualClock:
    """Time as the test says; `advance` moves it (idle expiry, lockout) without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def cheap_hasher():
    from argon2 import PasswordHasher
    return PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def in_process_app(config: Path, clock, *, accounts=(CLINICIAN, IT), identity=None, devices=(), library=None,
                   fleet=None, hasher=None, **accounts_options):
    """create_app over the settings file's gateway data, with `accounts` added in-process and
    hashed with cheap Argon2 parameters (the production ones cost about a second of CPU per
    login on a loaded test machine; the CLI's own accounts keep them) or `hasher`; library and
    fleet are whatever the test hands in; `accounts_options` go to Accounts. Close with `close_app`."""

    from appliance.gateway import settings as gateway_settings
    from appliance.portal.accounts import Accounts
    from appliance.portal.app import create_app
    from appliance.portal.context import PortalContext

    settings = gateway_settings.load(config)
    context = PortalContext(settings, identity, list(devices), clock, library=library, fleet=fleet)
    store = Accounts(settings.database_path, clock, hasher=hasher or cheap_hasher(), **accounts_options)
    known = {user.name for user in store.users()}
    for account in accounts:
        if account.name not in known:
            store.add(account.name, account.role, account.password)
    return create_app(context, accounts=store)


def close_app(app) -> None:
    app.extensions["portal"].close()
    app.extensions["portal_accounts"].close()


def csrf_token_of(client, path: str = "/login") -> str:
    body = client.get(path).get_data()
    return re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()


def log_in_test_client(client, account: Account, password: str | None = None):
    """POST /login through werkzeug's test client; the response (303 on success)."""
    return client.post("/login", data={"username": account.name,
                                       "password": account.password if password is None else password,
                                       "csrf_token": csrf_token_of(client)})


def audit_tail(app, count: int | None = None) -> list[tuple]:
    """The in-process app's audit entries as (event, actor, details): the last `count`, or all."""
    state = GatewayState(app.extensions["portal"].config.gateway.data)
    try:
        entries = state.audit_entries()
    finally:
        state.close()
    return [(e.event, e.actor, e.details) for e in (entries[-count:] if count else entries)]
