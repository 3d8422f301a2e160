"""`appliance doctor`: a readable report with a fix per problem; exit 1 when recording is blocked."""

from __future__ import annotations

from appliance import vault
from firmware_bridge.firmware.board import FIRMWARE_VERSION
from firmware_bridge.simulator import Simulator
from tests.test_controller_e2e import key_dir  # noqa: F401


def config_file(tmp_path, key_dir, port="simulated", source="synthetic"):
    path = tmp_path / "appliance.toml"
    path.write_text(f"""
[data]
dir = "data"
[camera]
source = "{source}"
width = 512
height = 288
[controller]
port = "{port}"
[storage]
reserve_mb = 1
max_session_minutes = 1
[keys]
recipients = ["{key_dir / vault.keys.RECIPIENT_PUB}"]
device_key = "{key_dir / vault.keys.DEVICE_KEY}"
""")
    return path


def test_a_ready_appliance_reports_the_firmware_version_and_exits_0(tmp_path, key_dir, appliance_cli):
    with Simulator(str(tmp_path / "controller")) as simulator:
        result = appliance_cli("doctor", "--config", str(config_file(tmp_path, key_dir, simulator.link_path)))
    report = result.stdout.decode()
    assert result.returncode == 0, report
    assert f"firmware {'.'.join(map(str, FIRMWARE_VERSION))}" in report and "512x288, delivering frames" in report and "ready to record" in report


def test_every_blocking_problem_is_named_with_its_fix_and_exits_1(tmp_path, key_dir, appliance_cli):
    config = config_file(tmp_path, key_dir, port=str(tmp_path / "unplugged"), source="vimba")
    (tmp_path / "appliance.toml").write_text(
        config.read_text().replace(str(key_dir / vault.keys.DEVICE_KEY), str(key_dir / "device.pub")))
    result = appliance_cli("doctor", "--config", str(config))
    report = result.stdout.decode()
    assert result.returncode == 1
    assert "recording is blocked by: camera, controller, keys" in report
    assert "GENICAM_GENTL64_PATH" in report and "USB cable" in report
    assert report.count("fix:") >= 3


def test_laser_emissions_no_recording_captured_are_counted_as_a_warning(tmp_path, key_dir, appliance_cli):
    from appliance.storage.database import Store

    store = Store(tmp_path / "data")
    for board_ms in (1200, 98_000):
        store.audit("emission_unrecorded", board_ms=board_ms, edge=3, state="Armed")
    store.close()
    with Simulator(str(tmp_path / "controller")) as simulator:
        result = appliance_cli("doctor", "--config", str(config_file(tmp_path, key_dir, simulator.link_path)))
    report = result.stdout.decode()
    assert result.returncode == 0, report     # a warning: it does not block the next recording
    assert "warn  emissions" in report and "2 laser emission(s) while nothing recorded" in report
