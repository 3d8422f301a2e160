"""Typed settings from one TOML file, with defaults that run on a laptop.

Without a file the appliance runs on embedded defaults: data in ./data, the synthetic camera,
the firmware simulator on a pseudo-terminal. A file only lists what differs, for example:

    [camera]
    source = "vimba"
    [controller]
    port = "/dev/treatment-controller"
    [storage]
    max_session_minutes = 90
    [kiosk]
    identity = "/media/clinic-key/recipient.key"
    [archive]
    endpoint = "https://s3.clinic.example"
    bucket = "treatment-recordings"
    credentials = "/run/credentials/appliance-archive.service/s3"

Unknown sections or keys, wrong types, out-of-range numbers and unusable paths are rejected
with one line naming the key (`BadInput`, exit code 2). Relative paths in a file are relative
to the file's directory; the defaults are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from appliance.archive.settings import ArchiveSettings   # [archive]: the archive's (and gateway's) own type
from appliance.errors import BadInput
from appliance.recording.settings import RecordingSettings   # [recording]: the recorder's own type
from appliance.storage.layout import DataLayout
from appliance.worklist.settings import WorklistSettings   # [worklist]: the worklist service's own type

SIMULATED_CONTROLLER = "simulated"


@dataclass(frozen=True)
class DataSettings:
    dir: Path = Path("data")      # sessions, the database, demo keys


@dataclass(frozen=True)
class CameraSettings:
    source: str = "synthetic"     # synthetic | opencv:SRC | vimba[:ID]
    width: int = 1920
    height: int = 1200
    fps: float = 30.0
    # GenTL producer directories VmbC loads from instead of GENICAM_GENTL64_PATH (vimba only;
    # empty: the environment variable, as VmbC does by default). See docs/operations.md.
    transport_layer_dirs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ControllerSettings:
    port: str = SIMULATED_CONTROLLER   # "simulated" runs the firmware simulator on a pty
    simulator_engine: str = "python"   # or "micropython": the real main.py under MicroPython's unix port


@dataclass(frozen=True)
class StorageSettings:
    max_session_minutes: float = 60.0   # arm only if this much recording fits, plus the reserve
    reserve_mb: int = 512               # never written into: stop and seal before it is reached
    warn_minutes: float = 10.0          # warn when less recording time than this is left


@dataclass(frozen=True)
class KeySettings:
    # Empty means <data.dir>/keys/recipient.pub and <data.dir>/keys/device.key (the demo's keys).
    recipients: tuple[Path, ...] = ()
    device_key: Path | None = None


@dataclass(frozen=True)
class KioskSettings:
    fullscreen: bool = True             # frameless fullscreen; `appliance kiosk --windowed` overrides
    hide_cursor: bool = True            # touch only; `--show-cursor` overrides (service laptops)
    review_autolock_s: float = 300.0    # review locks, dropping the unlocked key, after this long idle
    # The passphrase-protected recipient private key review unlocks. It need not exist yet (a clinic
    # may bring it on a USB stick). Empty means recipient.key beside the first recipient public key.
    identity: Path | None = None


@dataclass(frozen=True)
class Settings:
    data: DataSettings = field(default_factory=DataSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    kiosk: KioskSettings = field(default_factory=KioskSettings)
    # The clinic archive (S3 with Object Lock); its credentials file is checked when the
    # archive reads it (it may exist only inside the archive's systemd unit).
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    worklist: WorklistSettings = field(default_factory=WorklistSettings)

    @property
    def keys_dir(self) -> Path:
        return self.data.dir / "keys"

    @property
    def recipient_paths(self) -> tuple[Path, ...]:
        return self.keys.recipients or (self.keys_dir / "recipient.pub",)

    @property
    def device_key_path(self) -> Path:
        return self.keys.device_key or self.keys_dir / "device.key"

    @property
    def identity_path(self) -> Path:
        from appliance.vault.keys import RECIPIENT_KEY   # the vault (cryptography) loads only when asked
        return self.kiosk.identity or self.recipient_paths[0].parent / RECIPIENT_KEY

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data.dir)

    @property
    def database_path(self) -> Path:
        return self.layout.database

    @property
    def sessions_dir(self) -> Path:
        return self.layout.sessions

    @property
    def worklist_socket(self) -> Path:
        return self.worklist.socket or self.data.dir / "run" / "worklist.sock"


# Numbers that must be positive (zero is allowed where it is meaningful). RecordingSettings
# checks its own ranges.
_POSITIVE = {"camera.width", "camera.height", "camera.fps", "storage.max_session_minutes",
             "kiosk.review_autolock_s"}
_NOT_NEGATIVE = {"storage.reserve_mb", "storage.warn_minutes"}


def load(path: Path | None = None) -> Settings:
    """Settings from `path` (TOML), or the embedded defaults when `path` is None."""
    if path is None:
        return _settings_from({}, base=Path.cwd(), source="defaults")
    return _settings_from(read_document(path), base=Path(path).resolve().parent, source=str(path))


def read_document(path: Path) -> dict:
    """A settings file's TOML document; BadInput naming the file when it cannot be read."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"config: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"config: cannot read {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"config: {path} is not valid TOML: {error}") from None


def _settings_from(document: dict, *, base: Path, source: str) -> Settings:
    settings = sections_from(document, Settings, base=base, source=source)
    _check_paths(settings)
    return settings


def sections_from(document: dict, cls, *, base: Path, source: str):
    """`cls` (a dataclass whose fields are section dataclasses) built from a TOML document;
    the gateway's own file (appliance/gateway/settings.py) is read with it too."""
    sections = {f.name: f for f in dataclasses.fields(cls)}
    for name in document:
        if name not in sections:
            raise BadInput(f"config: unknown section [{name}] in {source} "
                           f"(known: {', '.join(sections)})")
    built = {}
    for name, section_field in sections.items():
        values = document.get(name, {})
        if not isinstance(values, dict):
            raise BadInput(f"config: {name} must be a [{name}] section in {source}")
        built[name] = _section(name, section_field.default_factory, values, base=base, source=source)
    return cls(**built)


def _section(name: str, cls, values: dict, *, base: Path, source: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in fields:
            raise BadInput(f"config: unknown key {name}.{key} in {source} (known: {', '.join(fields)})")
    converted = {key: _convert(f"{name}.{key}", hints[key], value, base=base)
                 for key, value in values.items()}
    try:
        section = cls(**converted)
    except ValueError as error:   # a section's own range check, worded from its key on
        raise BadInput(f"config: {name}.{error} in {source}") from None
    for key in fields:
        number = getattr(section, key)
        if f"{name}.{key}" in _POSITIVE and number <= 0:
            raise BadInput(f"config: {name}.{key} must be greater than 0, got {number}")
        if f"{name}.{key}" in _NOT_NEGATIVE and number < 0:
            raise BadInput(f"config: {name}.{key} must not be negative, got {number}")
    return section


def _convert(key: str, hint, value, *, base: Path):
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
    if optional:
        (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise BadInput(f"config: {key} must be a list, got {value!r}")
        (item,) = {arg for arg in typing.get_args(hint) if arg is not Ellipsis}
        return tuple(_convert(f"{key}[{i}]", item, element, base=base) for i, element in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise BadInput(f"config: {key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"config: {key} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"config: {key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise BadInput(f"config: {key} must be a non-empty string, got {value!r}")
        return value
    if typing.get_origin(hint) is dict:   # a table of strings (codec options)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise BadInput(f"config: {key} must be a table of strings, got {value!r}")
        return dict(value)
    if hint is Path:
        if not isinstance(value, str) or not value or "\0" in value:
            raise BadInput(f"config: {key} must be a path, got {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    raise TypeError(f"unsupported setting type {hint!r} for {key}")


def _check_paths(settings: Settings) -> None:
    data_dir = settings.data.dir
    if data_dir.exists() and not data_dir.is_dir():
        raise BadInput(f"config: data.dir is not a directory: {data_dir}")
    if not data_dir.exists() and not data_dir.absolute().parent.is_dir():
        raise BadInput(f"config: data.dir cannot be created, its parent does not exist: {data_dir}")
    for index, recipient in enumerate(settings.keys.recipients):
        if not recipient.is_file():
            raise BadInput(f"config: keys.recipients[{index}] is not a file: {recipient}")
    if settings.keys.device_key is not None and not settings.keys.device_key.is_file():
        raise BadInput(f"config: keys.device_key is not a file: {settings.keys.device_key}")
    if settings.kiosk.identity is not None and settings.kiosk.identity.is_dir():
        raise BadInput(f"config: kiosk.identity is a directory, not a key file: {settings.kiosk.identity}")
    for index, directory in enumerate(settings.camera.transport_layer_dirs):
        if not directory.is_dir():
            raise BadInput(f"config: camera.transport_layer_dirs[{index}] is not a directory: {directory}")
    port = settings.controller.port
    if port != SIMULATED_CONTROLLER and not Path(port).is_absolute():
        raise BadInput(f"config: controller.port must be \"{SIMULATED_CONTROLLER}\" or an absolute "
                       f"device path, got {port!r}")
    if settings.controller.simulator_engine not in ("python", "micropython"):
        raise BadInput(f"config: controller.simulator_engine must be python or micropython, "
                       f"got {settings.controller.simulator_engine!r}")
    source = settings.camera.source
    if not (source == "synthetic" or source.startswith("opencv:") or source == "vimba"
            or source.startswith("vimba:")):
        raise BadInput(f"config: camera.source must be synthetic, opencv:SRC or vimba[:ID], got {source!r}")
