"""`appliance demo --headless`: the scripted session on embedded defaults, reported, exit 0."""

from __future__ import annotations

import stat


def test_headless_demo_records_seals_verifies_and_reports(tmp_path, appliance_cli):
    result = appliance_cli("demo", "--headless", "--presses", "2", "--press-seconds", "0.5",
                           "--interval-seconds", "12", "--frame-size", "512x288", cwd=tmp_path,
                           env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    report = result.stdout.decode()
    assert result.returncode == 0, report + result.stderr.decode()
    assert "2 recordings, final state Idle" in report and "demo OK" in report
    rows = [line.split() for line in report.splitlines() if line.split()[-4:-2] == ["yes", "yes"]]  # verified, all frames
    assert len(rows) == 2 and all(row[1] == "sealed" and int(row[2]) > 0 for row in rows)
    assert all(row[-2] == "1" and 0.1 < float(row[-1].rstrip("s")) < 0.5 for row in rows)   # one emission each
    assert "laser: all 2 emissions recorded" in report
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert "DEMO-SUBJECT" not in "".join(p.name for p in (tmp_path / "data").rglob("*"))


def test_demo_refuses_nonsense_timing_with_one_line(tmp_path, appliance_cli):
    result = appliance_cli("demo", "--headless", "--press-seconds", "5", "--interval-seconds", "1", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
