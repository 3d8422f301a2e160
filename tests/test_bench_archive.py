"""`appliance bench archive` in its quick mode: the JSON carries every figure the issue asks for
(not their values: speed is the benchmark's business, never a unit test's)."""

from __future__ import annotations

import json


def test_bench_archive_quick_run_reports_every_figure(appliance_cli):
    result = appliance_cli("bench", "archive", "--mib", "16", "--rounds", "1", "--record-seconds", "2",
                           "--frame-size", "640x480", timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = json.loads(result.stdout)
    upload = figures["upload"]
    for name in ("ours", "boto3_upload_file"):
        assert upload[name]["bytes"] == 16 << 20
        assert set(upload[name]) == {"bytes", "wall_s", "mib_per_s", "cpu_s_per_gib", "peak_rss_mb"}
        assert upload[name]["mib_per_s"] > 0 and upload[name]["peak_rss_mb"] > 0
    assert upload["ratios"]["ours_mib_per_s_vs_boto3"] == round(
        upload["ours"]["mib_per_s"] / upload["boto3_upload_file"]["mib_per_s"], 3)
    concurrent = figures["recording_while_uploading"]
    assert concurrent["recording"]["frames"] > 0 and concurrent["uploads_during"] >= 1
    assert isinstance(concurrent["recording"]["dropped"], int) and concurrent["recording_alone"]["frames"] > 0
    assert set(figures["targets"]) == {"at_least_0_9_of_boto3", "uploader_peak_rss_at_most_100_mb",
                                       "no_drops_at_30_fps_while_uploading"}
    assert all(isinstance(value, bool) for value in figures["targets"].values())
