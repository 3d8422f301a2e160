"""`appliance keys init|device`: the clinic's recipient pair and the appliance's signing pair."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("keys", help="generate recipient and device keys")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    init = actions.add_parser("init", help="recipient pair: DIR/recipient.pub, DIR/recipient.key (passphrase)")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--passphrase-file", type=Path, help="read the passphrase from this file (default: prompt)")
    init.set_defaults(func=_init)
    device = actions.add_parser("device", help="device signing pair: DIR/device.pub, DIR/device.key")
    device.add_argument("--dir", type=Path, required=True)
    device.set_defaults(func=_device)


def _init(args) -> int:
    from appliance.commands import passphrase
    from appliance.vault import keys

    secret = passphrase.obtain(args.passphrase_file, confirm=True)
    key_path, pub_path = keys.generate_recipient(args.dir, secret)
    print(f"wrote {pub_path} (give to appliances) and {key_path} (keep with the clinic; passphrase-protected)")
    return 0


def _device(args) -> int:
    from appliance.vault import keys

    key_path, pub_path = keys.generate_device(args.dir)
    print(f"wrote {key_path} (stays on this appliance) and {pub_path} (for verifiers)")
    return 0
