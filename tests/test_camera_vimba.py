"""The Vimba camera through the real driver stack: vmbpy and VmbC loading Viky, the GenTL
producer in the `genicam` wheel (test extra), through `[camera] transport_layer_dirs`. Each run
is a subprocess of its own, as VmbSystem is a process singleton."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import vault
from tests.test_record_command import keys  # noqa: F401 - a module-scoped fixture

GENTL_DIR = Path(importlib.util.find_spec("genicam").origin).parent   # holds viky.cti


@pytest.fixture(scope="module")
def viky(tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-producer")
    result = subprocess.run([sys.executable, "-m", "tests.vimba_on_viky", str(GENTL_DIR), str(empty)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_viky_streams_bgr_frames_at_the_frame_rate_it_was_set_to(viky):
    stream = viky["stream"]
    assert viky["camera_id"].startswith("VikyTL_DEV_")
    assert stream["shape"] == [400, 400, 3]                      # Mono8, converted on the host
    assert stream["nominal_fps"] == 25.0
    assert 0.4 * 25 < stream["measured_fps"] < 2.5 * 25          # generous: the host is shared
    assert in_order_from_zero(stream["indices"])


def in_order_from_zero(indices: list[int]) -> bool:
    """Frame indices follow Viky's frame ids: from 0, increasing. (A gap would be a frame
    Viky had no free buffer for, which only a host stalled for half a second causes.)"""
    return indices[0] == 0 and indices == sorted(set(indices))


def test_viky_starts_and_stops_three_times_over(viky):
    assert len(viky["cycles"]) == 3 and all(len(cycle) == 5 and in_order_from_zero(cycle) for cycle in viky["cycles"])


def test_a_start_refused_by_the_driver_does_not_spoil_the_next_start(viky):
    assert "already streaming" in viky["failed_start"]
    assert in_order_from_zero(viky["start_after_failed_start"])


def test_an_unknown_camera_id_and_a_directory_without_a_producer_are_unavailable(viky):
    assert viky["unknown_id"] == "no Allied Vision camera with id 'NO_SUCH_CAMERA'"
    assert "no usable GenTL producer (.cti) in" in viky["no_producer"]


def test_vmbc_settings_allow_exactly_the_given_directories_and_keep_vmbcs_own_rules():
    import vmbpy
    import xml.etree.ElementTree as ElementTree
    from appliance.camera.vimba_setup import settings_allowing, shipped_settings

    shipped = shipped_settings(vmbpy)
    root = ElementTree.fromstring(settings_allowing(shipped, [Path("/opt/a"), Path("/opt/b")], {"Acme Ltd."}))
    assert [(p.text, p.get("required")) for p in root.iterfind("TlLoading/CtiPaths/Path")] == \
        [("/opt/a", "true"), ("/opt/b", "true")]
    own = [dict(rule.attrib) for rule in shipped.getroot().iterfind("TlLoading/TlRule")]
    rules = [dict(rule.attrib) for rule in root.iterfind("TlLoading/TlRule")]
    assert own[-1] == {"rule": "deny"}                           # VmbC denies unknown vendors...
    assert rules == own[:-1] + [{"vendor-type": "Acme Ltd.", "interface-type": "*", "rule": "allow"}, own[-1]]
    assert root.find("Logging/Level").text == shipped.getroot().find("Logging/Level").text


def test_record_from_viky_is_sealed_and_decrypts_to_every_frame_in_order(tmp_path, keys, appliance_cli):  # noqa: F811
    import av

    result = appliance_cli("record", "--camera", "vimba", "--transport-layer", str(GENTL_DIR), "--seconds", "3",
                           "--out", str(tmp_path / "out"), "--recipient", str(keys["public_path"]))
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    summary = json.loads(result.stdout)
    assert summary["dropped"] == 0 and summary["camera"]["incomplete"] == 0 and summary["camera_lost"] is None
    assert summary["camera"]["nominal_fps"] == 20.0                 # Viky's own rate: none was asked for
    assert summary["frames"] >= 20                                  # generous: 3 s at 20 fps is 60
    with vault.open_reader(Path(summary["path"]), keys["identity"]) as reader:
        plaintext = reader.read()
    with av.open(io.BytesIO(plaintext)) as container:
        times = [frame.pts for frame in container.decode(video=0)]
    # Presentation times come from each frame's capture time, in capture order: decoded in
    # order, strictly increasing, one per recorded frame, none missing and none twice.
    assert len(times) == summary["frames"] and times == sorted(set(times))
