"""`appliance keys init|device`: the clinic's recipient pair and the appliance's signing pair."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("keys", help="generate recipient and device keys")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    init = actions.add_parser("init", help="recipient pair: DIR/recipient.pub, DIR/recipient.key (passphrase); "
                              "X-Wing (post-quantum hybrid) unless --classical")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--classical", action="store_true", help="make a P-256 pair (readable by version 1 software)")
    init.add_argument("--passphrase-file", type=Path, help="read the passphrase from this file (default: prompt)")
    init.set_defaults(func=_init)
    device = actions.add_parser("device", help="device signing pair (ECDSA P-256 + ML-DSA-65): DIR/device.pub, "
                                "DIR/device.key")
    device.add_argument("--dir", type=Path, required=True)
    device.set_defaults(func=_device)


def _init(args) -> int:
    from appliance.commands import passphrase
    from appliance.vault import keys
    from appliance.vault.recipients import key_id, kind_of

    secret = passphrase.obtain(args.passphrase_file, confirm=True)
    key_path, pub_path = keys.generate_recipient(args.dir, secret, classical=args.classical)
    public = keys.load_recipient_public(pub_path)
    print(f"wrote {pub_path} (give to appliances) and {key_path} (keep with the clinic; passphrase-protected): "
          f"{kind_of(public)} key id {key_id(public).hex()}")
    return 0


def _device(args) -> int:
    from appliance.vault import keys

    key_path, pub_path = keys.generate_device(args.dir)
    print(f"wrote {key_path} (stays on this appliance) and {pub_path} (for verifiers): ECDSA P-256 + ML-DSA-65, "
          f"device key id {keys.load_device_public(pub_path).key_id}")
    return 0
