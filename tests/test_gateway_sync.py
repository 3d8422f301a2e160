"""`appliance gateway sync|status` as an operator runs them: altered recordings, and one without
an identity card, refused (one line each, audited once, nothing sent, never retried), bad
settings one line and exit 2."""

from __future__ import annotations

import json
import shutil

from tests.gatewaying import clinic_keys, flip_a_body_bit, record, write_config  # noqa: F401
from tests.servers import commitment_port  # noqa: F401  (a fixture)
from tests.servers.orthanc import Orthanc


def test_altered_recordings_are_refused_one_line_each_audited_and_nothing_is_sent(
        tmp_path, clinic_keys, appliance_cli, commitment_port):  # noqa: F811
    usb = tmp_path / "usb"
    flipped = record(usb, clinic_keys)
    flip_a_body_bit(flipped)
    first, second = record(usb, clinic_keys), record(usb, clinic_keys)
    shutil.copy(first.with_name(first.name + ".manifest"), second.with_name(second.name + ".manifest"))
    first.unlink()
    first.with_name(first.name + ".manifest").unlink()
    record(usb, clinic_keys, device_key=clinic_keys.stranger_key)
    record(usb, clinic_keys, card=None)                   # recorded before worklist support
    orthanc = Orthanc().start(tmp_path)
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port)
    try:
        result = appliance_cli("gateway", "sync", "--config", str(config), "--from", str(usb))
        lines = result.stdout.decode().splitlines()
        assert result.returncode == 1, result.stderr
        refused = [line for line in lines if ": refused, nothing sent: " in line]
        assert len(refused) == 4, lines
        assert any("vault content does not match" in line for line in refused)
        assert any("header does not match the manifest" in line for line in refused)
        assert any("which is not enrolled" in line for line in refused)
        (no_card,) = [line for line in refused if "no identity card" in line]
        assert "file it by hand" in no_card                # what the clinic can do about it
        assert result.stderr == b""
        again = appliance_cli("gateway", "sync", "--config", str(config), "--from", str(usb))
        assert again.returncode == 1
        assert sum(": refused earlier: " in line for line in again.stdout.decode().splitlines()) == 4
        assert orthanc.rest("/instances") == []
        status = appliance_cli("gateway", "status", "--config", str(config), "--json")
        report = json.loads(status.stdout)
        assert status.returncode == 0
        assert report["counts"] == {"delivered": 0, "failed": 0, "refused": 4}
        assert report["audit"]["ok"] and report["audit"]["entries"] == 4   # refused once, not per pass
        assert all(d["attempts"] == 0 for d in report["deliveries"])       # never tried, so never retried
        assert [d["awaits_enrolment"] for d in report["deliveries"]].count(True) == 1
        plain = appliance_cli("gateway", "status", "--config", str(config)).stdout.decode().splitlines()
        assert plain[0] == "0 delivered, 0 failed, 4 refused" and plain[-1] == "audit trail intact"
        assert len(plain) == 6                                     # one line per refused recording
    finally:
        orthanc.stop()


def test_bad_settings_and_a_wrong_passphrase_are_one_line_and_exit_2(tmp_path, clinic_keys, appliance_cli):
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=104,
                          called_ae="PACS")
    text = config.read_text()
    config.write_text(text.replace('confirm = "auto"', 'confirm = "maybe"'))
    bad = appliance_cli("gateway", "sync", "--config", str(config))
    assert bad.returncode == 2
    assert bad.stderr.decode().strip().splitlines() == [
        f"appliance: config: pacs.confirm must be one of auto, find, store-status, got 'maybe' in {config}"]
    wrong = tmp_path / "wrong-passphrase"
    wrong.write_text("not the passphrase\n")
    config.write_text(text.replace(str(clinic_keys.passphrase_file), str(wrong)))
    refused = appliance_cli("gateway", "sync", "--config", str(config))
    assert refused.returncode == 2
    assert len(refused.stderr.decode().strip().splitlines()) == 1
    assert "wrong passphrase" in refused.stderr.decode()
    assert not (tmp_path / "state").exists()               # nothing written before the key opened
