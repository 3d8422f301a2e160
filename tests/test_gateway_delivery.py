"""Gateway delivery over real PACS: Orthanc (storage commitment) and dcmtk's storescp (C-STORE
status only). Delivered once, confirmed; down, rejected, commitment refused -> failed, retried,
delivered once it comes back, never reported delivered before. A recording from a device
enrolled after it arrived is delivered by the next pass; other refusals stay. The media pipeline
is stood in for by one small instance per recording (tests/gatewaying.py), except where the
scratch files are watched: they stay in the gateway's own directory."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tempfile

import pydicom
import pytest

from appliance.gateway import settings as gateway_settings
from appliance.gateway.service import Gateway
from appliance.gateway.sources import DirectorySource
from appliance.gateway.state import GatewayState
from appliance.vault import keys
from tests.gatewaying import (PASSPHRASE, clinic_keys, flip_a_body_bit, record, small_instances,  # noqa: F401
                              write_config)
from tests.servers import commitment_port, free_port  # noqa: F401  (commitment_port: a fixture)
from tests.servers.dcmtk import StoreSCP
from tests.servers.orthanc import Orthanc


def gateway_for(tmp_path, clinic_keys, export_dir, *, pacs_port, called_ae, commitment_port=None,
                confirm="auto", name="gateway.toml", build_instances=small_instances) -> Gateway:
    config = write_config(tmp_path / name, clinic_keys, tmp_path / "gateway-data", pacs_port=pacs_port,
                          called_ae=called_ae, commitment_port=commitment_port or free_port(),
                          confirm=confirm, retry_s=1)
    settings = gateway_settings.load(config)
    identity = keys.load_identity(clinic_keys.recipient_key, PASSPHRASE.encode())
    return Gateway(settings, identity, GatewayState(settings.gateway.data), [DirectorySource(export_dir)],
                   build_instances=build_instances)


def known_to_orthanc(port: int) -> dict:
    return {"DicomModalities": {"gateway": ["TREATMENT_GW", "127.0.0.1", port]}}


def losing_script(tmp_path, flag):
    """An Orthanc Lua script for a PACS that acknowledges a C-STORE but does not keep the
    instance, while `flag` exists: Orthanc 1.10 answers success for an instance its
    ReceivedInstanceFilter drops (synchronously, before the answer: no race with our check)."""
    script = tmp_path / "lose.lua"
    script.write_text(f"""
function ReceivedInstanceFilter(dicom, origin, info)
  local flag = io.open("{flag}", "r")
  if flag ~= nil then
    flag:close()
    return false
  end
  return true
end
""")
    return script


@pytest.fixture
def export_dir(tmp_path):
    directory = tmp_path / "usb"
    directory.mkdir()
    return directory


def test_each_recording_is_delivered_once_confirmed_by_storage_commitment(
        tmp_path, clinic_keys, export_dir, commitment_port):  # noqa: F811
    session = "5e55" * 8
    record(export_dir, clinic_keys, session=session)
    record(export_dir, clinic_keys, session=session, interrupted=True)
    orthanc = Orthanc().start(tmp_path, extra_config=known_to_orthanc(commitment_port))
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port)
    try:
        outcomes = gateway.sync()
        assert [o.state for o in outcomes] == ["delivered", "delivered"], [o.line for o in outcomes]
        assert sum("interrupted recording" in o.line for o in outcomes) == 1
        instances = orthanc.rest("/instances")
        assert len(instances) == 2
        names = {orthanc.rest(f"/instances/{i}/simplified-tags")["PatientName"] for i in instances}
        assert names == {"Müller^Zoë"}
        assert gateway.sync() == []                        # a second pass sends nothing
        assert len(orthanc.rest("/instances")) == 2
        delivered = gateway.state.deliveries()
        assert [d.state for d in delivered] == ["delivered", "delivered"]
        assert {uid for d in delivered for uid in d.instances} == \
            {orthanc.rest(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in instances}
        assert gateway.state.verify_audit().ok
        assert [e.event for e in gateway.state.audit_entries()] == ["recording_delivered"] * 2
    finally:
        gateway.state.close()
        orthanc.stop()


def test_a_pacs_that_is_down_gets_it_once_it_answers_again(
        tmp_path, clinic_keys, export_dir, commitment_port):  # noqa: F811
    record(export_dir, clinic_keys)
    orthanc = Orthanc().start(tmp_path, extra_config=known_to_orthanc(commitment_port))
    orthanc.stop()
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port)
    try:
        (down,) = gateway.sync()
        assert down.state == "failed" and "does not answer" in down.line
        assert gateway.state.deliveries()[0].state == "failed"
        assert gateway.sync(ignore_backoff=False) == []    # the service waits for the retry time
        orthanc.restart()
        (back,) = gateway.sync()
        assert back.state == "delivered", back.line
        assert len(orthanc.rest("/instances")) == 1
        assert [e.event for e in gateway.state.audit_entries()] == ["delivery_failed", "recording_delivered"]
    finally:
        gateway.state.close()
        orthanc.stop()


def test_a_rejected_association_is_retried_until_the_pacs_knows_the_gateway(
        tmp_path, clinic_keys, export_dir, commitment_port):  # noqa: F811
    record(export_dir, clinic_keys)
    strict = {"DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False, "DicomAlwaysAllowFind": False,
              "DicomAlwaysAllowFindWorklist": False, "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False}
    orthanc = Orthanc().start(tmp_path, extra_config=strict)
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port)
    try:
        (rejected,) = gateway.sync()
        assert rejected.state == "failed" and "rejected the association" in rejected.line, rejected.line
        assert orthanc.rest("/instances") == []
        orthanc.rest("/modalities/gateway", method="PUT",
                     body={"AET": "TREATMENT_GW", "Host": "127.0.0.1", "Port": commitment_port})
        (accepted,) = gateway.sync()
        assert accepted.state == "delivered", accepted.line
        assert len(orthanc.rest("/instances")) == 1
    finally:
        gateway.state.close()
        orthanc.stop()


def test_a_refused_commitment_is_retried_and_delivered_once_the_pacs_keeps_it(
        tmp_path, clinic_keys, export_dir, commitment_port):  # noqa: F811
    record(export_dir, clinic_keys)
    losing = tmp_path / "pacs-loses-instances"
    losing.touch()
    orthanc = Orthanc().start(tmp_path, extra_config=known_to_orthanc(commitment_port) |
                              {"LuaScripts": [str(losing_script(tmp_path, losing))]})
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port)
    try:
        (refused,) = gateway.sync()
        assert refused.state == "failed" and "did not commit 1 of 1" in refused.line, refused.line
        assert gateway.state.deliveries()[0].state == "failed"
        losing.unlink()
        (kept,) = gateway.sync()
        assert kept.state == "delivered", kept.line
        assert len(orthanc.rest("/instances")) == 1
    finally:
        gateway.state.close()
        orthanc.stop()


def test_storescp_gets_the_instance_but_only_store_status_confirmation_calls_it_delivered(
        tmp_path, clinic_keys, export_dir):
    record(export_dir, clinic_keys)
    storescp = StoreSCP().start(tmp_path)
    cautious = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=storescp.dicom_port,
                           called_ae=storescp.aet, name="auto.toml")
    try:
        (unconfirmed,) = cautious.sync()
        assert unconfirmed.state == "failed" and "neither storage commitment nor C-FIND" in unconfirmed.line
        assert cautious.state.deliveries()[0].state == "failed"
        cautious.state.close()
        trusting = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=storescp.dicom_port,
                               called_ae=storescp.aet, confirm="store-status", name="trusting.toml")
        (delivered,) = trusting.sync()
        assert delivered.state == "delivered", delivered.line
        assert trusting.sync() == []
        (uid,) = trusting.state.deliveries()[0].instances
        trusting.state.close()
        # both sends carried the same SOP Instance UID: storescp holds one file (named after it)
        assert [path.name.split(".", 1)[1] for path in storescp.received()] == [uid]
    finally:
        storescp.stop()


def test_confirmed_by_query_the_instance_must_be_found_and_a_lost_one_is_retried(tmp_path, clinic_keys, export_dir):
    record(export_dir, clinic_keys)
    losing = tmp_path / "pacs-loses-instances"
    losing.touch()
    orthanc = Orthanc().start(tmp_path, extra_config={"LuaScripts": [str(losing_script(tmp_path, losing))]})
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, confirm="find")
    try:
        (unanswered,) = gateway.sync()      # Orthanc answers queries only from modalities it knows
        assert unanswered.state == "failed" and "did not answer the query" in unanswered.line, unanswered.line
        orthanc.rest("/modalities/gateway", method="PUT",
                     body={"AET": "TREATMENT_GW", "Host": "127.0.0.1", "Port": free_port()})
        (lost,) = gateway.sync()
        assert lost.state == "failed" and "its query does not find" in lost.line, lost.line
        losing.unlink()
        (found,) = gateway.sync()
        assert found.state == "delivered", found.line
        assert len(orthanc.rest("/instances")) == 1
    finally:
        gateway.state.close()
        orthanc.stop()


def test_a_recording_whose_instances_cannot_be_built_fails_in_one_line_and_nothing_is_sent(
        tmp_path, clinic_keys, export_dir):
    record(export_dir, clinic_keys)
    storescp = StoreSCP().start(tmp_path)
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=storescp.dicom_port,
                          called_ae=storescp.aet, confirm="store-status")

    def broken_decoder(vault_path, signed, identity, transfer):
        raise ValueError("invalid data found when processing input")
        yield

    gateway.build_instances = broken_decoder
    try:
        (failed,) = gateway.sync()
        assert failed.state == "failed"
        assert failed.line.endswith("ValueError: invalid data found when processing input")
        assert storescp.received() == []
        gateway.build_instances = small_instances
        (delivered,) = gateway.sync()
        assert delivered.state == "delivered"
    finally:
        gateway.state.close()
        storescp.stop()


class ListedEarlier:
    """A source as it was listed a moment ago, fetched from now."""

    def __init__(self, source, locations):
        self.name, self._source, self._locations = source.name, source, locations

    def locations(self):
        return iter(self._locations)

    def fetch(self, location):
        return self._source.fetch(location)


def test_a_recording_that_vanishes_during_the_pass_is_not_refused_and_is_taken_when_back(
        tmp_path, clinic_keys, export_dir):
    path = record(export_dir, clinic_keys)
    storescp = StoreSCP().start(tmp_path)
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=storescp.dicom_port,
                          called_ae=storescp.aet, confirm="store-status")
    source = gateway.sources[0]
    (location,) = source.locations()
    kept = tmp_path / "pulled"
    kept.mkdir()
    path.rename(kept / path.name)                     # the stick is pulled after the listing
    gateway.sources = [ListedEarlier(source, [location])]
    try:
        (gone,) = gateway.sync()
        assert gone.state == "failed" and "is no longer there" in gone.line
        assert gateway.state.delivery(location) is None  # nothing recorded against it
        (kept / path.name).rename(path)
        gateway.sources = [source]
        (delivered,) = gateway.sync()
        assert delivered.state == "delivered", delivered.line
    finally:
        gateway.state.close()
        storescp.stop()


def test_a_recording_from_a_device_enrolled_later_is_delivered_by_the_next_pass_other_refusals_stay(
        tmp_path, clinic_keys, export_dir):
    devices = tmp_path / "devices"
    shutil.copytree(clinic_keys.devices, devices)
    keys = dataclasses.replace(clinic_keys, devices=devices)
    record(export_dir, keys, device_key=keys.stranger_key)    # a new room's appliance, not enrolled yet
    flip_a_body_bit(record(export_dir, keys))
    record(export_dir, keys, card=None)
    storescp = StoreSCP().start(tmp_path)
    gateway = gateway_for(tmp_path, keys, export_dir, pacs_port=storescp.dicom_port,
                          called_ae=storescp.aet, confirm="store-status")
    try:
        assert [o.state for o in gateway.sync()] == ["refused"] * 3
        assert all("refused earlier" in o.line for o in gateway.sync())   # nothing changed: not looked at again
        shutil.copy(keys.stranger_key.with_name("device.pub"), devices / "room-2.pub")
        outcomes = gateway.sync()
        assert sorted(o.state for o in outcomes) == ["delivered", "refused", "refused"], [o.line for o in outcomes]
        assert all("refused earlier" in o.line for o in outcomes if o.state == "refused")
        assert len(storescp.received()) == 1
        assert sorted(o.state for o in gateway.sync()) == ["refused", "refused"]
        assert len(storescp.received()) == 1
        events = sorted(e.event for e in gateway.state.audit_entries())
        assert events == ["recording_delivered"] + ["recording_refused"] * 3
    finally:
        gateway.state.close()
        storescp.stop()


def open_files() -> list[str]:
    """What this process has open, as the kernel names it (an unnamed file: '<dir>/#<inode> (deleted)',
    or '<dir>/<name> (deleted)' where the file system has no O_TMPFILE)."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:       # closed meanwhile (listdir's own descriptor)
            pass
    return names


def test_the_real_pipeline_keeps_its_scratch_files_in_the_gateways_directory_and_uses_its_region(
        tmp_path, clinic_keys, export_dir, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)            # gettempdir() reads TMPDIR again
    record(export_dir, clinic_keys)
    storescp = StoreSCP().start(tmp_path)
    gateway = gateway_for(tmp_path, clinic_keys, export_dir, pacs_port=storescp.dicom_port,
                          called_ae=storescp.aet, confirm="store-status", build_instances=None)  # the real pipeline
    config = tmp_path / "gateway.toml"
    config.write_text(config.read_text().replace("[pacs]", 'anatomic_region = ["81745001", "SCT", "Eye"]\n[pacs]'))
    gateway.settings = gateway_settings.load(config)
    pipeline, seen = gateway.build_instances, []

    def watched(*args):
        for dataset in pipeline(*args):
            yield dataset
            seen.extend(open_files())   # the part's transcoded MP4 and the instance encoded from it

    gateway.build_instances = watched
    scratch = tmp_path / "gateway-data" / "scratch"
    try:
        (delivered,) = gateway.sync()
        assert delivered.state == "delivered", delivered.line
        (received,) = storescp.received()
        assert pydicom.dcmread(received).AnatomicRegionSequence[0].CodeMeaning == "Eye"   # the clinic's setting
    finally:
        gateway.state.close()
        storescp.stop()
    assert len([name for name in seen if name.startswith(f"{scratch}/")]) == 2, seen
    assert not [name for name in seen if name.startswith(f"{temp}/")]
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o700
    assert list(temp.iterdir()) == [] and list(scratch.iterdir()) == []
