"""`appliance gateway serve` and `appliance gateway user add|remove`: the clinic portal
(docs/portal.md). Passwords come from a file, never the command line (shell history, `ps`)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CONFIG = Path("/etc/appliance-gateway/gateway.toml")


def register(actions) -> None:
    serve = actions.add_parser("serve", help="the clinic portal over HTTPS, until SIGTERM")
    _config_option(serve)
    serve.set_defaults(func=_serve)
    user = actions.add_parser("user", help="portal accounts")
    user_actions = user.add_subparsers(dest="user_action", metavar="ACTION", parser_class=type(user))
    user_actions.required = True
    add = user_actions.add_parser("add", help="a new account")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="clinician (review) or it (fleet health, no video)")
    add.add_argument("--password-file", type=Path, required=True,
                     help="a file holding the password (one line; at least 12 characters; mode 0600)")
    _config_option(add)
    add.set_defaults(func=_add_user)
    remove = user_actions.add_parser("remove", help="remove an account; its sessions end at once")
    remove.add_argument("name")
    _config_option(remove)
    remove.set_defaults(func=_remove_user)


def _config_option(parser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"the gateway's settings file (TOML; default {DEFAULT_CONFIG})")


def _serve(args) -> int:
    import logging
    import signal
    import threading

    from appliance.commands import passphrase
    from appliance.gateway import settings as gateway_settings
    from appliance.gateway.verify import enrolled_devices
    from appliance.portal.app import create_app
    from appliance.portal.context import open_context
    from appliance.portal.server import build_server, serve, usable_pair
    from appliance.vault import keys

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = gateway_settings.load(args.config)
    pair = usable_pair(config)   # before the passphrase: a bad pair is found at once
    identity = keys.load_identity(config.gateway.identity, passphrase.obtain(config.gateway.passphrase_file))
    context = open_context(config, identity, enrolled_devices(config.gateway.devices))
    server = build_server(create_app(context), config, pair)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        serve(server, config, stop)
    finally:
        context.close()
    return 0


def _accounts(config_path: Path):
    import time

    from appliance.gateway import settings as gateway_settings
    from appliance.gateway.state import GatewayState
    from appliance.portal.accounts import Accounts

    config = gateway_settings.load(config_path)
    state = GatewayState(config.gateway.data)
    return Accounts(config.database_path, time.time), state


def _operator() -> dict:
    import getpass
    return {"os_user": getpass.getuser()}


def _add_user(args) -> int:
    import stat

    from appliance.errors import BadInput

    try:
        mode = args.password_file.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):   # as the archive's credentials file
            raise BadInput(f"password file {args.password_file} must be readable by its owner only "
                           f"(mode 0600), it is {stat.S_IMODE(mode):04o}")
        password = args.password_file.read_bytes().decode("utf-8").rstrip("\r\n")
    except OSError as error:
        raise BadInput(f"cannot read password file {args.password_file}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"password file {args.password_file} is not UTF-8 text") from None
    if not password:
        raise BadInput(f"password file {args.password_file} is empty")
    accounts, state = _accounts(args.config)
    try:
        user = accounts.add(args.name, args.role, password)
        state.audit("portal_user_added", "operator", account=user.name, role=user.role, **_operator())
    finally:
        accounts.close()
        state.close()
    print(f"portal account {user.name} ({user.role}) added")
    return 0


def _remove_user(args) -> int:
    accounts, state = _accounts(args.config)
    try:
        accounts.remove(args.name)
        state.audit("portal_user_removed", "operator", account=args.name, **_operator())
    finally:
        accounts.close()
        state.close()
    print(f"portal account {args.name} removed; its sessions have ended")
    return 0
