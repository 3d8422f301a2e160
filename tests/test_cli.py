from appliance import __version__


def test_version_is_printed(appliance_cli):
    result = appliance_cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"appliance {__version__}"


def test_usage_error_is_one_line_and_exit_code_2(appliance_cli):
    result = appliance_cli("no-such-command")
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "invalid choice" in lines[0]
