"""Config: laptop defaults, and every kind of bad setting rejected with a line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import config
from appliance.errors import BadInput


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return path


def test_defaults_run_on_a_laptop():
    settings = config.load()
    assert settings.camera.source == "synthetic"
    assert settings.controller.port == config.SIMULATED_CONTROLLER
    assert settings.data.dir == Path("data")
    assert settings.recipient_paths == (Path("data/keys/recipient.pub"),)


def test_a_file_overrides_only_what_it_names_and_paths_are_relative_to_it(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "clinic.pub").write_text("x")
    settings = config.load(write(tmp_path, """
[data]
dir = "store"
[storage]
max_session_minutes = 90
[keys]
recipients = ["keys/clinic.pub"]
"""))
    assert settings.data.dir == tmp_path / "store"
    assert settings.storage.max_session_minutes == 90.0
    assert settings.storage.reserve_mb == config.StorageSettings().reserve_mb
    assert settings.recipient_paths == (tmp_path / "keys" / "clinic.pub",)


@pytest.mark.parametrize("text, named", [
    ("[camera]\nfsp = 30\n", "camera.fsp"),
    ("[cameras]\nfps = 30\n", "[cameras]"),
    ("[camera]\nfps = \"fast\"\n", "camera.fps"),
    ("[camera]\nwidth = 1.5\n", "camera.width"),
    ("[camera]\nwidth = true\n", "camera.width"),
    ("[camera]\nfps = 0\n", "camera.fps"),
    ("[camera]\nsource = \"webcam\"\n", "camera.source"),
    ("[storage]\nreserve_mb = -1\n", "storage.reserve_mb"),
    ("[keys]\nrecipients = \"one.pub\"\n", "keys.recipients"),
    ("[keys]\nrecipients = [\"missing.pub\"]\n", "keys.recipients[0]"),
    ("[keys]\ndevice_key = \"missing.key\"\n", "keys.device_key"),
    ("[controller]\nport = \"ttyACM0\"\n", "controller.port"),
    ("[data]\ndir = \"no/such/parent/data\"\n", "data.dir"),
    ("camera = 3\n", "camera"),
    ("[kiosk]\nfullscreen = \"no\"\n", "kiosk.fullscreen"),
    ("[kiosk]\nhide_cursor = 0\n", "kiosk.hide_cursor"),
    ("[kiosk]\nreview_autolock_s = 0\n", "kiosk.review_autolock_s"),
    ("[kiosk]\nreview_autolock_s = \"5 min\"\n", "kiosk.review_autolock_s"),
    ("[kiosk]\nidentity = 7\n", "kiosk.identity"),
    ("[kiosk]\nidentity = \".\"\n", "kiosk.identity"),
    ("[kiosk]\nautolock = 60\n", "kiosk.autolock"),
])
def test_bad_settings_are_rejected_naming_the_key(tmp_path, text, named):
    with pytest.raises(BadInput) as raised:
        config.load(write(tmp_path, text))
    message = str(raised.value)
    assert named in message and "\n" not in message


def test_data_dir_that_is_a_file_is_rejected(tmp_path):
    (tmp_path / "occupied").write_text("")
    with pytest.raises(BadInput, match="data.dir"):
        config.load(write(tmp_path, "[data]\ndir = \"occupied\"\n"))


def test_missing_and_malformed_files_are_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        config.load(tmp_path / "absent.toml")
    with pytest.raises(BadInput, match="not valid TOML"):
        config.load(write(tmp_path, "[camera\n"))


def test_kiosk_defaults_and_identity_beside_the_first_recipient(tmp_path):
    kiosk = config.load().kiosk
    assert (kiosk.fullscreen, kiosk.hide_cursor, kiosk.review_autolock_s) == (True, True, 300.0)
    (tmp_path / "recipients").mkdir()
    (tmp_path / "recipients" / "clinic.pub").write_text("x")
    settings = config.load(write(tmp_path, '[keys]\nrecipients = ["recipients/clinic.pub"]\n'))
    assert settings.identity_path == tmp_path / "recipients" / "recipient.key"


def test_kiosk_section_sets_window_autolock_and_a_key_that_need_not_exist_yet(tmp_path):
    settings = config.load(write(tmp_path, """
[kiosk]
fullscreen = false
hide_cursor = false
review_autolock_s = 90
identity = "usb/recipient.key"
"""))
    assert (settings.kiosk.fullscreen, settings.kiosk.hide_cursor) == (False, False)
    assert settings.kiosk.review_autolock_s == 90.0
    assert settings.identity_path == tmp_path / "usb" / "recipient.key"
