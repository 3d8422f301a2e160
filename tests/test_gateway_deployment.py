"""The gateway's systemd unit (clinic server, not the appliance image): systemd-analyze verifies
it without a warning, rates its exposure low, and its command line is one the CLI accepts."""

from __future__ import annotations

from pathlib import Path

from appliance.cli import build_parser
from tests.test_deployment import REPO, SYSTEMD, analyze, exposure, scratch_root, unit_settings

UNIT = REPO / "systemd" / "clinic-server" / "appliance-gateway.service"


def service(key: str) -> list[str]:
    return [value for name, value in unit_settings(UNIT.read_text())["Service"] if name == key]


def test_the_gateway_unit_is_not_one_the_appliance_image_installs():
    assert not (SYSTEMD / UNIT.name).exists()      # systemd/*.service go into the appliance image


def test_the_gateway_unit_verifies_without_a_warning_and_its_exposure_is_low(tmp_path: Path):
    root = scratch_root(tmp_path, {UNIT.name: UNIT.read_text()})
    result = analyze(root, "verify", "--man=no", UNIT.name)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert exposure(root, UNIT.name) <= 2.0


def test_the_key_passphrase_and_archive_keys_arrive_as_credentials_and_the_command_line_parses():
    credentials = dict(entry.split(":", 1) for entry in service("LoadCredential"))
    assert set(credentials) == {"recipient.key", "passphrase", "s3-credentials"}
    (command,) = service("ExecStart")
    arguments = command.split()[1:]
    parsed = build_parser().parse_args(arguments)
    assert (parsed.command, parsed.gateway_action) == ("gateway", "run")


def test_decrypted_data_and_the_recipient_key_reach_neither_swap_nor_a_core_dump():
    assert (service("MemorySwapMax"), service("LimitCORE")) == (["0"], ["0"])
