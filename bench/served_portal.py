"""The portal as `appliance bench portal` runs it, without the test suite (bench is installed
with the appliance, tests are not): clinic keys, one clinician account, `appliance gateway serve`
on 127.0.0.1 (any free port, read from its log) with its TMPDIR in the work dir, a script's
HTTPS client that verifies the portal's certificate, and Debian's chromium's launch flags.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from appliance import vault

CHROMIUM = "/usr/bin/chromium"    # Debian's; never a browser download
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSPHRASE = "bench portal recipient passphrase"
READY_S = 60.0
STOP_S = 30.0
LISTENING = re.compile(r"portal listening on (https://[^/\s]+)/")


@dataclass(frozen=True)
class Keys:
    recipient_pub: Path
    recipient_key: Path
    passphrase_file: Path
    device_key: Path
    devices: Path            # the gateway's enrolled devices directory


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password: str


CLINICIAN = Account("bench.clinician", "clinician", "bench clinician passphrase 16")


def make_keys(directory: Path) -> Keys:
    """A recipient pair (with its passphrase file) and one enrolled device."""
    directory.mkdir(mode=0o700)
    recipient_key, recipient_pub = vault.keys.generate_recipient(directory / "recipient", PASSPHRASE.encode())
    device_key, device_pub = vault.keys.generate_device(directory / "device")
    (directory / "devices").mkdir(mode=0o700)
    shutil.copy(device_pub, directory / "devices" / "room-1.pub")
    passphrase = directory / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    passphrase.chmod(0o600)
    return Keys(recipient_pub, recipient_key, passphrase, device_key, directory / "devices")


class ServedPortal:
    """`appliance gateway serve` over `bucket` of the S3 server `weed`, in `directory`: config,
    data, log and the process's TMPDIR (`tmp`) all under it."""

    def __init__(self, directory: Path, keys: Keys, weed, bucket: str):
        directory.mkdir(mode=0o700)
        self.directory, self.data, self.tmp = directory, directory / "data", directory / "tmp"
        self.tmp.mkdir(mode=0o700)
        self.log_path = directory / "portal.log"
        self.config = directory / "gateway.toml"
        credentials = weed.write_credentials(directory / "s3-credentials")
        self.config.write_text(f"""[gateway]
identity = "{keys.recipient_key}"
passphrase_file = "{keys.passphrase_file}"
devices = "{keys.devices}"
data = "{self.data}"

[archive]
endpoint = "{weed.endpoint}"
bucket = "{bucket}"
credentials = "{credentials}"

[portal]
listen = "127.0.0.1:0"
""")
        self.process: subprocess.Popen | None = None
        self.base_url = ""

    def add(self, account: Account) -> None:
        from appliance.cli import main

        password_file = self.directory / f"password-{account.name}"
        password_file.write_text(account.password + "\n")
        password_file.chmod(0o600)
        with contextlib.redirect_stdout(sys.stderr):    # the CLI's line: the bench's stdout is its JSON
            code = main(["gateway", "user", "add", account.name, "--role", account.role,
                         "--password-file", str(password_file), "--config", str(self.config)])
        if code != 0:
            raise RuntimeError(f"adding the bench account failed ({code})")

    def start(self) -> ServedPortal:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance.cli", "gateway", "serve", "--config", str(self.config)],
                stdout=log, stderr=log, env={**os.environ, "TMPDIR": str(self.tmp)})
        deadline = time.monotonic() + READY_S
        while not (found := LISTENING.search(self.log())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the portal did not start:\n{self.log()[-2000:]}")
            time.sleep(0.05)     # polling the log with a deadline
        self.base_url = found.group(1)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> ScriptClient:
        return ScriptClient(self.base_url, self.data / "portal" / "self-signed.crt")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None    # the caller sees the 303 itself


class ScriptClient:
    """A script's HTTPS client with its own cookies, verifying the portal's certificate."""

    def __init__(self, base_url: str, certificate: Path):
        self.base_url = base_url
        context = ssl.create_default_context(cafile=str(certificate))
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                                   urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirects)

    def request(self, method: str, path: str, *, form: dict | None = None, headers: dict | None = None
                ) -> tuple[int, dict, bytes]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        try:
            with self._opener.open(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()

    def get(self, path: str, **kwargs) -> tuple[int, dict, bytes]:
        return self.request("GET", path, **kwargs)

    def csrf_token(self) -> str:
        """The hidden csrf_token of the login page (which also starts this client's cookie)."""
        _, _, page = self.get("/login")
        return re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()

    def log_in(self, account: Account, password: str | None = None) -> int:
        """The login form's POST (with its CSRF token), with the account's password unless another
        is given; the status, 303 when logged in."""
        status, _, _ = self.request("POST", "/login", form={
            "username": account.name, "password": account.password if password is None else password,
            "csrf_token": self.csrf_token()})
        return status


def log_in(page, base_url: str, name: str, password: str) -> None:
    """A chromium page through the login form, as a person would; returns once the portal has left /login."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: not url.endswith("/login"))
