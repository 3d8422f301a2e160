"""The gateway's own settings file (on the clinic server, never on the appliance), for example:

    [gateway]
    identity = "/etc/appliance-gateway/recipient.key"
    passphrase_file = "/run/credentials/appliance-gateway.service/passphrase"
    devices = "/etc/appliance-gateway/devices"     # enrolled device public keys (*.pub)
    data = "/var/lib/appliance-gateway"            # state database, audit trail, scratch/, incoming/
    directories = ["/srv/usb-imports"]             # export directories scanned on each pass
    anatomic_region = ["39937001", "SCT", "Skin structure"]   # code, scheme, meaning
    [archive]                                      # the appliance's section (appliance/archive/settings.py)
    endpoint = "https://s3.clinic.example"
    bucket = "treatment-recordings"
    credentials = "/etc/appliance-gateway/s3-credentials"   # its own read-only keys, AWS-style INI
    [pacs]
    host = "pacs.clinic.example"
    port = 104
    called_ae = "PACS"
    calling_ae = "TREATMENT_GW"
    transfer = "h264"
    [portal]                                       # the web portal (appliance/portal/settings.py)
    listen = "0.0.0.0:8443"
    certificate = "/etc/appliance-gateway/portal.crt"   # both or neither: else a self-signed pair
    key = "/etc/appliance-gateway/portal.key"
    idle_minutes = 15

Read with appliance/config.py's section machinery: unknown keys, wrong types and bad values are
one line naming the key (BadInput, exit 2). Relative paths are relative to the file's directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from appliance import config
from appliance.archive.settings import ArchiveSettings
from appliance.errors import BadInput
from appliance.portal.settings import PortalSettings

TRANSFERS = ("h264", "hevc")
# How a delivery is confirmed: "auto" takes storage commitment when the PACS accepts it, else a
# C-FIND of the instance; "find" always the C-FIND (a PACS whose commitment misbehaves);
# "store-status" trusts the C-STORE success alone (a PACS that offers neither, e.g. dcmtk's
# storescp: the operator says so explicitly, the default never does).
CONFIRMATIONS = ("auto", "find", "store-status")
# The VL Image module needs a coded anatomic region and the identity card carries none: skin
# (SNOMED CT) by default, what a treatment laser works on; a clinic may set its own.
SKIN = ("39937001", "SCT", "Skin structure")


def _check_ae(name: str, value: str) -> None:
    if not 0 < len(value) <= 16 or not value.isascii() or "\\" in value or not value.strip():
        raise ValueError(f"{name} must be 1 to 16 ASCII characters (a DICOM AE title), got {value!r}")


@dataclass(frozen=True)
class GatewaySettings:
    identity: Path | None = None          # the recipient private key (passphrase-protected PKCS#8)
    passphrase_file: Path | None = None   # a file or a systemd credential holding its passphrase
    devices: Path = Path("devices")       # directory of enrolled device public keys, *.pub
    data: Path = Path("gateway-data")     # the gateway's state (SQLite) and audit trail
    directories: tuple[Path, ...] = ()    # export directories (USB format) scanned on each pass
    refresh_s: float = 60.0               # `gateway run`: seconds between passes
    retry_s: float = 30.0                 # first retry delay after a failed delivery, doubled each time
    retry_max_s: float = 3600.0           # ... up to this
    anatomic_region: tuple[str, ...] = SKIN   # Anatomic Region Sequence: code value, scheme, meaning

    def __post_init__(self):
        for name in ("refresh_s", "retry_s", "retry_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")
        if len(self.anatomic_region) != 3:
            raise ValueError(f"anatomic_region must be [code value, coding scheme, code meaning], "
                             f"got {list(self.anatomic_region)}")


@dataclass(frozen=True)
class PacsSettings:
    host: str = "127.0.0.1"
    port: int = 104
    called_ae: str = "PACS"
    calling_ae: str = "TREATMENT_GW"
    transfer: str = "h264"                # h264: High Profile level 4.1 at 1728x1080; hevc: Main, native size
    confirm: str = "auto"
    # Where the PACS sends the storage commitment result (N-EVENT-REPORT) back: the gateway
    # listens here while it waits; the PACS must know calling_ae at this host and port.
    commitment_port: int = 11113
    commitment_bind: str = "0.0.0.0"      # the address that listener binds
    commitment_timeout_s: float = 120.0
    timeout_s: float = 60.0               # association, DIMSE and network timeouts

    def __post_init__(self):
        for name in ("port", "commitment_port"):
            if not 1 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be between 1 and 65535, got {getattr(self, name)}")
        _check_ae("called_ae", self.called_ae)
        _check_ae("calling_ae", self.calling_ae)
        if self.transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {', '.join(TRANSFERS)}, got {self.transfer!r}")
        if self.confirm not in CONFIRMATIONS:
            raise ValueError(f"confirm must be one of {', '.join(CONFIRMATIONS)}, got {self.confirm!r}")
        for name in ("commitment_timeout_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class GatewayConfig:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)   # the appliance's own section type
    pacs: PacsSettings = field(default_factory=PacsSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)

    @property
    def database_path(self) -> Path:
        return self.gateway.data / "gateway.sqlite3"

    @property
    def scratch_dir(self) -> Path:
        """Where the encrypted scratch files of transcoding and sending live (never named there)."""
        return self.gateway.data / "scratch"


def load(path: Path) -> GatewayConfig:
    """The gateway's settings from `path`; the file is required (it names the key and the PACS)."""
    document = config.read_document(path)
    base = Path(path).resolve().parent
    settings = config.sections_from(document, GatewayConfig, base=base, source=str(path))
    # The defaults too are beside the file, not wherever the service happened to start.
    settings = dataclasses.replace(settings, gateway=dataclasses.replace(settings.gateway, **{
        name: base / getattr(settings.gateway, name) for name in ("devices", "data")}))
    gateway = settings.gateway
    if gateway.identity is None:
        raise BadInput(f"config: gateway.identity (the recipient private key) is missing in {path}")
    if not gateway.identity.is_file():
        raise BadInput(f"config: gateway.identity is not a file: {gateway.identity}")
    if gateway.passphrase_file is not None and not gateway.passphrase_file.is_file():
        raise BadInput(f"config: gateway.passphrase_file is not a file: {gateway.passphrase_file}")
    if not gateway.devices.is_dir():
        raise BadInput(f"config: gateway.devices is not a directory: {gateway.devices}")
    for index, directory in enumerate(gateway.directories):
        if not directory.is_dir():
            raise BadInput(f"config: gateway.directories[{index}] is not a directory: {directory}")
    if gateway.data.exists() and not gateway.data.is_dir():
        raise BadInput(f"config: gateway.data is not a directory: {gateway.data}")
    if settings.archive.configured:
        from appliance.archive.s3 import ArchiveError, read_credentials   # boto3 only with an archive

        try:
            read_credentials(settings.archive)    # the archive's own reader: one format, one place
        except ArchiveError as error:
            raise BadInput(str(error)) from None
    return settings
