"""`appliance bench archive` in its quick mode: the JSON carries every figure the issue asks for
(not their values: speed is the benchmark's business, never a unit test's)."""

from __future__ import annotations

import json
import os

from appliance.archive.settings import ArchiveSettings


def test_bench_archive_quick_run_reports_every_figure(appliance_cli):
    result = appliance_cli("bench", "archive", "--mib", "16", "--rounds", "1", "--record-seconds", "1",
                           "--frame-size", "640x480", timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = json.loads(result.stdout)
    upload = figures["upload"]
    for name in ("ours", "boto3_upload_file"):
        assert upload[name]["bytes"] == 16 << 20
        assert set(upload[name]) == {"bytes", "wall_s", "mib_per_s", "cpu_s_per_gib", "peak_rss_mb"}
        assert upload[name]["mib_per_s"] > 0 and upload[name]["peak_rss_mb"] > 0
    assert upload["ratios"]["ours_mib_per_s_vs_boto3"] == round(
        upload["ours"]["mib_per_s"] / upload["boto3_upload_file"]["mib_per_s"], 3)   # the medians' ratio
    assert upload["all_rounds_mib_per_s"]["ours"] == [upload["ours"]["mib_per_s"]]   # one round: its median
    machine = figures["machine"]   # a busy machine shows in the figures, so they can be read for what they are
    assert machine["cores"] == os.cpu_count()
    assert len(machine["load_average_before"]) == 3 and len(machine["load_average_after"]) == 3
    assert figures["settings"]["cpu_percent"] == ArchiveSettings().cpu_percent   # the default budget
    concurrent = figures["recording_while_uploading"]
    assert concurrent["recording"]["frames"] > 0 and concurrent["uploads_during"] >= 1
    assert isinstance(concurrent["recording"]["dropped"], int) and concurrent["recording_alone"]["frames"] > 0
    assert set(figures["targets"]) == {"at_least_0_9_of_boto3", "uploader_peak_rss_at_most_100_mb",
                                       "no_drops_at_30_fps_while_uploading"}
    assert all(isinstance(value, bool) for value in figures["targets"].values())
