"""The archive's credentials file: an AWS-style shared credentials file (INI, `[default]` with
`aws_access_key_id` and `aws_secret_access_key`), owner-only. Every way it can be wrong is one
line naming the file and what is wrong, and never the secret."""

from __future__ import annotations

import os

import pytest

from appliance.archive import s3
from appliance.archive.settings import ArchiveSettings
from tests.servers.seaweedfs import write_credentials

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY%secret"


def settings_for(path) -> ArchiveSettings:
    return ArchiveSettings(endpoint="http://127.0.0.1:9", bucket="b", credentials=path)


def credentials_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "s3-credentials"
    path.write_text(text)
    path.chmod(mode)
    return path


def refusal(path) -> str:
    with pytest.raises(s3.ArchiveRefused) as refused:
        s3.read_credentials(settings_for(path))
    message = str(refused.value)
    assert "\n" not in message and SECRET[:5] not in message, message
    return message


def test_the_keys_of_the_default_section_are_read(tmp_path):
    path = write_credentials(tmp_path / "s3-credentials", "AKIAEXAMPLE", SECRET)
    assert s3.read_credentials(settings_for(path)) == ("AKIAEXAMPLE", SECRET)
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_other_profiles_and_aws_cli_extras_are_ignored_and_spacing_is_tolerated(tmp_path):
    path = credentials_file(tmp_path, "# from the clinic's IT\n[other]\naws_access_key_id = OTHER\n"
                                      "aws_secret_access_key = OTHER\n\n[default]\naws_access_key_id=AKIA2\n"
                                      f"aws_secret_access_key   =   {SECRET}  \naws_session_token = \n")
    assert s3.read_credentials(settings_for(path)) == ("AKIA2", SECRET)


def test_a_file_saved_on_windows_with_a_bom_and_crlf_line_ends_is_read(tmp_path):
    path = tmp_path / "s3-credentials"
    path.write_bytes(f"\ufeff[default]\r\naws_access_key_id = AKIA3\r\naws_secret_access_key = {SECRET}\r\n".encode())
    path.chmod(0o600)
    assert s3.read_credentials(settings_for(path)) == ("AKIA3", SECRET)


def test_a_missing_file_is_one_line(tmp_path):
    assert "cannot read credentials file" in refusal(tmp_path / "absent")
    assert "No such file" in refusal(tmp_path / "absent")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o700 | 0o004])
def test_a_file_others_may_read_is_refused(tmp_path, mode):
    path = write_credentials(tmp_path / "s3-credentials", "AKIA", SECRET)
    path.chmod(mode)
    message = refusal(path)
    assert "readable by its owner only (mode 0600)" in message and f"{mode:04o}" in message


def test_without_a_default_section_it_is_refused(tmp_path):
    path = credentials_file(tmp_path, f"[clinic]\naws_access_key_id = AKIA\naws_secret_access_key = {SECRET}\n")
    assert "has no [default] section" in refusal(path)


def test_the_old_toml_format_is_refused_without_quoting_the_secret(tmp_path):
    path = credentials_file(tmp_path, f'access_key = "AKIA"\nsecret_key = "{SECRET}"\n')
    assert "not an AWS-style INI credentials file (line 1: no [section] header" in refusal(path)


@pytest.mark.parametrize("text, missing", [
    (f"[default]\naws_secret_access_key = {SECRET}\n", "lacks aws_access_key_id in [default]"),
    ("[default]\naws_access_key_id = AKIA\n", "lacks aws_secret_access_key in [default]"),
    ("[default]\naws_access_key_id = AKIA\naws_secret_access_key =\n", "lacks aws_secret_access_key"),
    ("[default]\n", "lacks aws_access_key_id and aws_secret_access_key in [default]"),
    # the [default] section spelled as the INI parser's own DEFAULT is not the profile
    (f"[DEFAULT]\naws_access_key_id = AKIA\naws_secret_access_key = {SECRET}\n", "has no [default] section"),
])
def test_a_missing_key_is_named(tmp_path, text, missing):
    assert missing in refusal(credentials_file(tmp_path, text))


@pytest.mark.parametrize("text, where", [
    (f"[default]\naws_access_key_id = AKIA\n{SECRET}\n", "line 3: not `key = value`"),
    (f"[default]\naws_access_key_id = A\n[default]\naws_secret_access_key = {SECRET}\n",
     "line 3: section [default] twice"),
    (f"[default]\naws_secret_access_key = {SECRET}\naws_secret_access_key = {SECRET}\n",
     "line 3: aws_secret_access_key twice"),
])
def test_a_malformed_file_names_the_line_but_never_quotes_it(tmp_path, text, where):
    assert where in refusal(credentials_file(tmp_path, text))


def test_a_file_that_is_not_text_is_one_line(tmp_path):
    path = tmp_path / "s3-credentials"
    path.write_bytes(b"[default]\naws_access_key_id = \xff\xfe\n")
    path.chmod(0o600)
    assert "is not UTF-8 text" in refusal(path)


def test_no_credentials_setting_is_one_line():
    with pytest.raises(s3.ArchiveRefused, match="archive.credentials is not set"):
        s3.read_credentials(ArchiveSettings(endpoint="http://127.0.0.1:9", bucket="b"))


# On the command line a broken local credentials file is bad input: exit 2 with one line (so the
# unit, RestartPreventExitStatus=2, stays stopped instead of restarting into it). A refusal by the
# server stays exit 1 (tests/test_archive_service_s3.py). Nothing listens at the endpoint: the file
# is refused before any connection.
BROKEN = {
    "missing": (None, 0o600, "cannot read credentials file"),
    "loose": (f"[default]\naws_access_key_id = AKIA\naws_secret_access_key = {SECRET}\n", 0o644,
              "readable by its owner only"),
    "malformed": (f"[default]\naws_access_key_id = AKIA\n{SECRET}\n", 0o600, "line 3: not `key = value`"),
}


def config_with_broken_credentials(tmp_path, problem: str):
    text, mode, _ = BROKEN[problem]
    path = tmp_path / "s3-credentials"
    if text is not None:
        credentials_file(tmp_path, text, mode)
    device_key = tmp_path / "device.key"      # never read: the credentials are refused first
    device_key.write_bytes(b"")
    device_key.chmod(0o600)
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n[keys]\ndevice_key = "{tmp_path / "device.key"}"\n'
                      f'[archive]\nendpoint = "http://127.0.0.1:9"\nbucket = "b"\ncredentials = "{path}"\n')
    return config


@pytest.mark.parametrize("problem", sorted(BROKEN))
@pytest.mark.parametrize("action", ["push", "verify", "run"])
def test_the_cli_calls_a_broken_credentials_file_bad_input(tmp_path, appliance_cli, action, problem):
    config = config_with_broken_credentials(tmp_path, problem)
    result = appliance_cli("archive", action, "--config", str(config), timeout=60)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and BROKEN[problem][2] in lines[0] and SECRET[:5] not in lines[0], lines
    assert not (tmp_path / "data").exists()     # refused before anything was written


def test_status_reads_no_credentials_and_still_reports(tmp_path, appliance_cli):
    # status works from an operator's shell, where the unit's credential is not readable.
    config = config_with_broken_credentials(tmp_path, "missing")
    result = appliance_cli("archive", "status", "--config", str(config), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "archive: b at http://127.0.0.1:9" in result.stdout.decode()
