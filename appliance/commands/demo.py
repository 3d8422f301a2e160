"""`appliance demo [--headless]`: the appliance on its embedded defaults, data in ./data.

Synthetic camera, the firmware simulator on a pseudo-terminal, demo keys made on first run
(the demo passphrase lives in ./data/demo-passphrase, 0600), SQLite in ./data. With a display
(DISPLAY or WAYLAND_DISPLAY) and without --headless it opens the kiosk in a window, at
--frame-size, with the simulator panel under it (footswitch, laser, interlock; the space bar
is the footswitch). Headless, it
runs a scripted session: open a session, press the footswitch three times for 3 s, 15 s apart,
firing the simulated laser for the middle half of each press, close the session, then report
each recording (frames, dropped, duration, state, verified, decoded frames, laser emissions)
and the session's emission report, and exit 0 only if every recording is sealed, verified,
decrypts completely and holds each frame it claims once, in order (the synthetic camera stamps
every frame's index), and every emission was recorded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import time
from pathlib import Path

DEMO_SUBJECT = "DEMO-SUBJECT-0001"
DEMO_OPERATOR = "DEMO-TECH"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the appliance on embedded defaults (data in ./data)")
    parser.add_argument("--headless", action="store_true",
                        help="scripted session without the kiosk (the default when there is no display)")
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (default: ./data)")
    parser.add_argument("--presses", type=int, default=3, help="footswitch presses (default 3)")
    parser.add_argument("--press-seconds", type=float, default=3.0, help="how long each press lasts (default 3)")
    parser.add_argument("--interval-seconds", type=float, default=15.0,
                        help="from one press to the next (default 15)")
    parser.add_argument("--frame-size", default="1920x1200", help="synthetic camera WIDTHxHEIGHT (default 1920x1200)")
    parser.set_defaults(func=demo)


def demo_keys(data: Path):
    """(recipient public key path, identity loader, device key path), created on first run."""
    from appliance.vault import keys
    from appliance.atomic import write_atomically

    key_dir = data / "keys"
    passphrase_file = data / "demo-passphrase"
    if not (key_dir / keys.RECIPIENT_KEY).exists():
        if not passphrase_file.exists():
            write_atomically(passphrase_file, secrets.token_urlsafe(18).encode() + b"\n")
        keys.generate_recipient(key_dir, passphrase_file.read_bytes().rstrip(b"\n"))
        print(f"demo recipient key created in {key_dir} (passphrase in {passphrase_file})")
    if not (key_dir / keys.DEVICE_KEY).exists():
        keys.generate_device(key_dir)
        print(f"demo device key created in {key_dir}")
    return key_dir, passphrase_file


def demo(args) -> int:
    from appliance.errors import BadInput

    os.umask(0o077)
    if args.presses < 1 or args.press_seconds <= 0 or args.interval_seconds < args.press_seconds:
        raise BadInput("--presses >= 1, --press-seconds > 0 and --interval-seconds >= --press-seconds are required")
    try:
        width, height = (int(part) for part in args.frame_size.lower().split("x"))
    except ValueError:
        raise BadInput(f"--frame-size must be WIDTHxHEIGHT, got {args.frame_size!r}") from None
    args.data.mkdir(mode=0o700, parents=True, exist_ok=True)
    demo_keys(args.data)
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if display and not args.headless:
        from appliance.ui.app import run_kiosk
        from appliance.atomic import write_atomically

        settings_file = args.data / "demo.toml"   # the kiosk reads its data directory from settings
        write_atomically(settings_file, (f"[data]\ndir = {json.dumps(str(args.data.absolute()))}\n"
                                         f"[camera]\nwidth = {width}\nheight = {height}\n").encode(),
                         overwrite=True)
        return run_kiosk(settings_file, fullscreen=False, hide_cursor=False)
    return _headless(args, width, height)


def _headless(args, width: int, height: int) -> int:
    from appliance import config
    from appliance.controller import Controller
    from appliance.errors import IntegrityError

    defaults = config.load(None)
    settings = dataclasses.replace(
        defaults, data=dataclasses.replace(defaults.data, dir=args.data),
        camera=dataclasses.replace(defaults.camera, width=width, height=height))
    controller = Controller(settings)
    print(f"starting: synthetic camera {width}x{height}, simulated treatment controller, data in {args.data}")
    controller.start()
    try:
        controller.wait_for(lambda status: status.link.up, 10)
        session = controller.begin_session(DEMO_SUBJECT, DEMO_OPERATOR)
        print(f"session {session.session_uid} open: Armed")
        for press in range(1, args.presses + 1):
            started = time.monotonic()
            controller.simulator.press()
            controller.wait_for(lambda status: status.state == "Recording", 5)
            print(f"press {press}/{args.presses}: footswitch down, Recording")
            time.sleep(args.press_seconds / 4)
            controller.simulator.laser(True)
            time.sleep(args.press_seconds / 2)
            controller.simulator.laser(False)
            time.sleep(args.press_seconds / 4)
            controller.simulator.release()
            print(f"press {press}/{args.presses}: footswitch up, post-roll {settings.recording.post_roll_s:g} s")
            if press < args.presses:
                time.sleep(max(0.0, started + args.interval_seconds - time.monotonic()))
        controller.end_session()
        print("session closing: sealing the last recording")
        controller.wait_for(lambda status: status.state in ("Idle", "Error"), 60)
        final = controller.status
    except TimeoutError as error:
        raise IntegrityError(f"demo failed: {error}") from None
    finally:
        controller.stop()
    return _report(settings, session.session_uid, final)


def _report(settings, session_uid: str, final) -> int:
    from appliance import vault
    from appliance.storage.reader import StoreReader

    key_dir, passphrase_file = settings.keys_dir, settings.data.dir / "demo-passphrase"
    identity = vault.keys.load_identity(key_dir / vault.keys.RECIPIENT_KEY,
                                        passphrase_file.read_bytes().rstrip(b"\n"))
    device_public = vault.keys.load_device_public(key_dir / vault.keys.DEVICE_PUB)
    reader = StoreReader(settings.data.dir)
    try:
        recordings = reader.recordings(session_uid)
        chain = reader.verify_audit()
    finally:
        reader.close()
    print(f"\nsession {session_uid}: {len(recordings)} recordings, final state {final.state}")
    print(f"{'recording':34} {'state':11} {'frames':>6} {'dropped':>7} {'duration':>8} {'verified':>8} "
          f"{'all frames':>10} {'emissions':>9} {'laser on':>8}")
    emission_report = final.last_session_emission_report or "no emission report"
    good = final.state == "Idle" and chain.ok and bool(recordings) and emission_report.startswith("all ")
    for recording in recordings:
        verification = vault.verify(recording.path, device_public)
        decrypts = _decrypts_completely(recording.path, identity, recording.frames or 0, recording.dropped or 0)
        good &= recording.state == "sealed" and verification.ok and decrypts
        print(f"{recording.uid:34} {recording.state:11} {recording.frames or 0:>6} {recording.dropped or 0:>7} "
              f"{recording.duration_s or 0:>7.1f}s {'yes' if verification.ok else 'NO':>8} "
              f"{'yes' if decrypts else 'NO':>10} {recording.emissions or 0:>9} {recording.laser_on_s or 0:>7.2f}s")
    print(f"laser: {emission_report}")
    print(f"audit trail: {'intact' if chain.ok else f'BROKEN at entry {chain.broken_at}'}")
    print("demo OK" if good else "demo FAILED")
    return 0 if good else 1


def _decrypts_completely(path: Path, identity, frames: int, dropped: int) -> bool:
    """Every segment authenticates up to the final one, and the decoded video holds each frame
    the recording claims once, in order, with drops as the only gaps (decoded in memory)."""
    from appliance import vault
    from appliance.camera.stamp import complete_in_order, decoded_stamps
    from appliance.errors import ApplianceError

    try:
        with vault.open_reader(path, identity) as reader:
            indices = decoded_stamps(reader)
            return reader.finalized and complete_in_order(indices, frames, dropped)
    except ApplianceError:
        return False
