"""`appliance kiosk`: the production touchscreen kiosk; `--set-service-pin` stores the service
PIN's hash (read from standard input, never from the command line). The screenshots in docs/ are
rendered by documentation tooling in the source tree (`python -m tools.screenshots DIR`), not by
the installed appliance."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("kiosk", help="run the touchscreen kiosk")
    parser.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
    parser.add_argument("--set-service-pin", action="store_true",
                        help="read a new service PIN (6+ digits) from standard input, store its hash, exit")
    # Each pair overrides the [kiosk] setting of the same name; without either, the setting holds.
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--windowed", dest="fullscreen", action="store_const", const=False, default=None,
                        help="a normal window instead of fullscreen (overrides kiosk.fullscreen)")
    window.add_argument("--fullscreen", dest="fullscreen", action="store_const", const=True,
                        help="fullscreen and frameless (overrides kiosk.fullscreen)")
    cursor = parser.add_mutually_exclusive_group()
    cursor.add_argument("--show-cursor", dest="hide_cursor", action="store_const", const=False, default=None,
                        help="keep the mouse cursor, for service laptops (overrides kiosk.hide_cursor)")
    cursor.add_argument("--hide-cursor", dest="hide_cursor", action="store_const", const=True,
                        help="hide the mouse cursor (overrides kiosk.hide_cursor)")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.set_service_pin:
        return _set_service_pin(args.config)
    from appliance.ui.app import run_kiosk

    return run_kiosk(args.config, fullscreen=args.fullscreen, hide_cursor=args.hide_cursor)


def _set_service_pin(config_path: Path | None) -> int:
    from appliance import config
    from appliance.storage.database import make_private_dir
    from appliance.ui.app import service_pin_path
    from appliance.ui.service_access import write_pin

    settings = config.load(config_path)
    pin = getpass.getpass("New service PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    make_private_dir(settings.data.dir)
    write_pin(service_pin_path(settings), pin)
    print(f"service PIN stored in {service_pin_path(settings)}")
    return 0
