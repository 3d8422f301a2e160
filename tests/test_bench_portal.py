"""`appliance bench portal` in its quick mode: every figure the issue asks for is there, the
portal's RSS stays within the issue's bound while two browsers play, and no plaintext video lies
in the portal's dirs, its TMPDIR, /dev/shm or its open files meanwhile, by a scan that finds
plaintext planted in each (speed itself is the benchmark's business)."""

from __future__ import annotations

import json

import pytest


def test_bench_portal_quick_run_reports_every_figure(appliance_cli):
    result = appliance_cli("bench", "portal", "--minutes", "2", "--seeks", "3", "--play-seconds", "1", timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = json.loads(result.stdout)
    browser = figures["chromium"]
    assert browser["duration_s"] == 120 and browser["video_width"] == 512      # the index gave the duration
    assert browser["time_to_first_frame_s"] > 0 and browser["seek_ms"]["count"] == 3
    assert all(played > 0 for played in browser["played_s_while_sampling"])   # both browsers really played
    scan = browser["plaintext_scan"]
    assert scan["found"] == [] and scan["files_read"] > 0
    assert scan["self_test"] == {"planted": 3, "found": 3}     # data dir, TMPDIR, /dev/shm: the scan sees each
    assert 0 < figures["portal_rss_mb"]["peak"] <= 300
    assert figures["range"]["first_byte_ms"]["count"] == 3 and figures["range"]["first_request_s"] > 0
    old = figures["old_design"]
    assert old["time_to_first_frame_s"] == pytest.approx(old["decrypt_to_tmpfs_s"] + old["first_frame_from_file_s"],
                                                         abs=0.002)   # each figure rounded on its own
    assert figures["ratios"]["time_to_first_frame_old_vs_portal"] > 0
    assert figures["machine"]["cores"] > 0 and len(figures["machine_load"]["load_average"]) == 3
    assert set(figures["targets"]) == {"range_first_byte_p99_at_most_200_ms", "portal_rss_at_most_300_mb"}
