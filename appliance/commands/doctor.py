"""`appliance doctor [--config F]`: can this appliance record a treatment right now?

Checks the camera and its transport layer, the treatment controller port and its firmware,
Checks the camera and its transport layer, the treatment controller port and its firmware,
the keys and the post-quantum cryptography the vault needs, free disk as recording time, the
clock and the records (audit trail, recordings left open, laser emissions no recording
captured, recordings not yet in the clinic archive). Prints one line per check with the fix for each problem; exits 1 when something
blocks recording, 0 otherwise (warnings do not block). Run it with the appliance stopped: the
camera and the controller port are opened for real and may be held by a running appliance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"
CAMERA_FIRST_FRAME_S = 5.0
LINK_UP_S = 3.0
EARLIEST_PLAUSIBLE_YEAR = 2025


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str          # ok | warn | FAIL (FAIL blocks recording)
    finding: str
    fix: str = ""


def register(subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check camera, controller, disk, keys and clock")
    parser.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
    parser.set_defaults(func=doctor)


def doctor(args) -> int:
    from appliance import config

    settings = config.load(args.config)
    checks = [check_camera(settings), check_controller(settings), check_keys(settings), check_cryptography(),
              check_disk(settings), check_clock(), *check_records(settings)]
    width = max(len(check.name) for check in checks)
    for check in checks:
        print(f"{check.outcome:4}  {check.name:{width}}  {check.finding}")
        if check.fix:
            print(f"      {'':{width}}  fix: {check.fix}")
    blocking = [check.name for check in checks if check.outcome == FAIL]
    print(f"\n{'recording is blocked by: ' + ', '.join(blocking) if blocking else 'ready to record'}")
    return 1 if blocking else 0


def check_camera(settings) -> Check:
    from appliance.camera import open_configured_camera
    from appliance.errors import ApplianceError

    source = settings.camera.source
    try:
        camera = open_configured_camera(settings.camera)
        camera.start()
    except ApplianceError as error:
        return Check("camera", FAIL, f"{source}: {error}",
                     "connect the camera, and for vimba install the Allied Vision transport layer "
                     "(GENICAM_GENTL64_PATH or [camera] transport_layer_dirs must name its directory)")
    try:
        frame = camera.frames.get(timeout=CAMERA_FIRST_FRAME_S)
    except Exception:
        frame = None
    finally:
        camera.stop()
    if frame is None:
        return Check("camera", FAIL, f"{source}: opened, but no frame within {CAMERA_FIRST_FRAME_S:g} s",
                     "check the camera's cable, power and trigger settings")
    height, width = frame.image.shape[:2]
    return Check("camera", OK, f"{source}: {width}x{height}, delivering frames")


def check_controller(settings) -> Check:
    import queue

    from appliance.config import SIMULATED_CONTROLLER
    from firmware_bridge.link import ControllerFault, ControllerLink, LinkDown, LinkUp

    port = settings.controller.port
    if port == SIMULATED_CONTROLLER:
        return Check("controller", WARN, "simulated treatment controller (demo): the footswitch is not wired",
                     'set [controller] port = "/dev/treatment-controller" on a clinical appliance')
    events: queue.Queue = queue.Queue()
    link = ControllerLink(port, events=events)
    link.start()
    deadline = time.monotonic() + LINK_UP_S
    problem = f"no answer from {port} within {LINK_UP_S:g} s"
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = events.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(event, LinkUp):
                return Check("controller", OK, f"{port}: firmware {event.firmware_version}, "
                                               f"protocol v{event.protocol_version}, board {event.board_id}")
            if isinstance(event, (LinkDown, ControllerFault)):
                problem = f"{port}: {event.reason}"
    finally:
        link.stop()
    return Check("controller", FAIL, problem,
                 "check the USB cable to the treatment controller and that the udev rule names it "
                 "/dev/treatment-controller; stop a running appliance first (it holds the port)")


def check_keys(settings) -> Check:
    from appliance.control.keys import load_keys
    from appliance.errors import BadInput

    try:
        keys = load_keys(settings)
    except BadInput as error:
        return Check("keys", FAIL, str(error),
                     "install the clinic's recipient public key and the device key "
                     "(appliance keys init / appliance keys device), or fix [keys] in the settings")
    return Check("keys", OK, f"{len(keys.recipients)} recipient key(s) and the device key are readable")


def check_cryptography(probes=None) -> Check:
    """ML-KEM, X25519, their HPKE hybrid and ML-DSA, which vault v2 recipients and signatures need."""
    from appliance.vault import capabilities

    missing = capabilities.missing_algorithms(probes)
    if missing:
        return Check("cryptography", FAIL, capabilities.unsupported_line(missing),
                     "reinstall the appliance from its image, or `make venv` on a development machine")
    return Check("cryptography", OK, f"{', '.join(capabilities.PROBES)} work ({capabilities.library_versions()})")


def check_disk(settings) -> Check:
    from appliance.control.health import disk_projection

    storage = settings.storage
    projection = disk_projection(settings)
    finding = (f"{projection.seconds_left / 3600:.1f} h of recording time free at "
               f"{settings.recording.bitrate_estimate_bps / 1e6:g} Mbit/s above a {storage.reserve_mb} MB reserve")
    if not projection.can_arm:
        return Check("disk", FAIL, finding + f"; a session needs {storage.max_session_minutes:g} min",
                     "export recordings and have clinic IT remove exported ones; with [archive] set up, the "
                     "archive service frees space from recordings it archived more than keep_local_days ago")
    return Check("disk", WARN if projection.warn else OK, finding)


def check_clock() -> Check:
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    if now.year < EARLIEST_PLAUSIBLE_YEAR:
        return Check("clock", FAIL, f"the system clock says {now:%Y-%m-%d %H:%M} UTC, which cannot be right",
                     "set the clock (enable NTP: timedatectl set-ntp true); audit times depend on it")
    synchronized = Path("/run/systemd/timesync/synchronized").exists()
    if not synchronized:
        return Check("clock", WARN, f"{now:%Y-%m-%d %H:%M:%S} UTC, not confirmed synchronized by NTP",
                     "enable time synchronization (timedatectl set-ntp true)")
    return Check("clock", OK, f"{now:%Y-%m-%d %H:%M:%S} UTC, synchronized")


def check_records(settings) -> list[Check]:
    from appliance.storage.reader import StoreReader

    if not settings.database_path.exists():
        return [Check("records", OK, f"no database yet in {settings.data.dir} (created on first start)")]
    reader = StoreReader(settings.data.dir)
    try:
        chain = reader.verify_audit()
        left_open = reader.open_recordings()
        unrecorded = reader.unrecorded_emissions()
        backlog = reader.archive_backlog()
    finally:
        reader.close()
    checks = []
    if chain.ok:
        checks.append(Check("audit trail", OK, f"{chain.entries} entries, chain intact"))
    else:
        checks.append(Check("audit trail", WARN, f"broken at entry {chain.broken_at}: {chain.problem}",
                            "preserve the database as evidence and report it to the clinic's quality officer"))
    if left_open:
        checks.append(Check("recordings", WARN, f"{len(left_open)} recording(s) left open by a crash",
                            "start the appliance: start-up recovery marks them interrupted"))
    if unrecorded:
        checks.append(Check("emissions", WARN, f"{unrecorded} laser emission(s) while nothing recorded",
                            "review the audit trail's emission_unrecorded entries (board times) "
                            "with the quality officer"))
    else:
        checks.append(Check("emissions", OK, "every laser emission the appliance saw was recorded"))
    checks.append(check_archive(settings.archive, backlog, time.time()))
    return checks


def check_archive(archive, backlog, now: float) -> Check:
    """The archive backlog from the records (no network: the archive service does the talking)."""
    from appliance.archive.backlog import backlog_line, overdue

    if not archive.configured:
        return Check("archive", WARN, "no [archive] configured: every recording exists only on this disk",
                     "set [archive] endpoint, bucket and credentials (docs/archive.md) and enable "
                     "appliance-archive.service")
    line = f"{archive.bucket} at {archive.endpoint}: {backlog_line(backlog, now)}"
    if overdue(backlog, now, archive.warn_after_hours):
        return Check("archive", WARN, line + f" (more than {archive.warn_after_hours:g} h)",
                     "see `appliance archive status` and `journalctl -u appliance-archive`; check the "
                     "network, the credentials and the bucket")
    return Check("archive", OK, line)
