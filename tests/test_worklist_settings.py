"""The [worklist] section: loaded from the appliance's settings file, each bad value refused in
one line naming its key; the socket defaults into the data directory."""

import pytest

from appliance import config
from appliance.errors import BadInput


def load(tmp_path, text: str):
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return config.load(path)


def test_a_configured_worklist_loads_and_the_socket_defaults_into_the_data_dir(tmp_path):
    settings = load(tmp_path, '[data]\ndir = "data"\n[worklist]\nhost = "ris.clinic.local"\nport = 11112\n'
                              'called_ae = "RIS1"\ncalling_ae = "TREATMENT1"\nstation_ae = "ROOM1"\n'
                              'refresh_s = 30\n')
    worklist = settings.worklist
    assert (worklist.host, worklist.port, worklist.called_ae, worklist.calling_ae, worklist.station_ae,
            worklist.modality, worklist.refresh_s) == ("ris.clinic.local", 11112, "RIS1", "TREATMENT1", "ROOM1",
                                                       "XC", 30.0)
    assert settings.worklist_socket == tmp_path / "data" / "run" / "worklist.sock"


def test_without_a_section_there_is_no_worklist():
    assert config.load().worklist.host == ""


def test_a_socket_path_is_relative_to_the_settings_file(tmp_path):
    assert load(tmp_path, '[worklist]\nsocket = "run/w.sock"\n').worklist_socket == tmp_path / "run" / "w.sock"


@pytest.mark.parametrize("line, message", [
    ("port = 0", "worklist.port must be between 1 and 65535"),
    ("port = 70000", "worklist.port must be between 1 and 65535"),
    ('called_ae = "A\\\\B"', "worklist.called_ae must be 1 to 16 printable ASCII"),
    ('calling_ae = "SEVENTEEN-CHARS-X"', "worklist.calling_ae must be 1 to 16 printable ASCII"),
    ('station_ae = "   "', "worklist.station_ae must be 1 to 16 printable ASCII"),
    ('station_ae = "RAUM-ÄRZTE"', "worklist.station_ae must be 1 to 16 printable ASCII"),
    ('modality = "xc"', "worklist.modality must be a DICOM code string"),
    ("refresh_s = 0", "worklist.refresh_s must be greater than 0"),
    ("timeout_s = -1", "worklist.timeout_s must be greater than 0"),
    (f'socket = "/{"s" * 120}.sock"', "worklist.socket path is longer than 107 bytes"),
    ('hots = "ris"', "unknown key worklist.hots"),
])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, line, message):
    with pytest.raises(BadInput, match=message) as refused:
        load(tmp_path, f"[worklist]\n{line}\n")
    assert "\n" not in str(refused.value)

