"""End to end on the clinic side: recordings with sealed identity cards in an export directory
-> `appliance gateway sync` (the real media pipeline) -> Orthanc, confirmed by storage
commitment: each clip one instance in the ordered study, names in any script intact, the
video decodes to every frame at level <= 4.1, and dciodvfy finds no error or warning in what
Orthanc keeps."""

from __future__ import annotations

import io

import av
import pydicom
import pytest

from tests.gatewaying import clinic_keys, record, write_config  # noqa: F401
from tests.servers import commitment_port  # noqa: F401  (a fixture)
from tests.servers.orthanc import Orthanc
from tests.test_gateway_dicom import dciodvfy_report, mp4_of

STUDY = "1.2.826.0.1.3680043.8.498.4242"
CARD = {"source": "worklist", "patient_name": "Müller^Zoë", "patient_id": "PID-0042", "birth_date": "19761105",
        "sex": "F", "accession_number": "ACC-7", "study_instance_uid": STUDY,
        "requested_procedure": "Laser treatment", "scheduled_step_id": "SPS-3",
        "scheduled_start": "20261201093000", "operator_id": "op-11"}
YAMADA = CARD | {"patient_name": "Yamada^Tarou=山田^太郎=やまだ^たろう", "patient_id": "PID-0043",
                 "study_instance_uid": STUDY + ".1", "accession_number": "ACC-8"}


def validatable(data: bytes) -> bytes:
    """The instance as dciodvfy can read it: this dciodvfy build takes HEVC's transfer syntax
    for a native one and stops at the pixel data (tests/test_gateway_dicom.py shows it), so an
    HEVC instance is checked under H.264's label; every other attribute is the same."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    if dataset.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.4.107":
        return data
    dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"
    dataset.LossyImageCompressionMethod = "ISO_14496_10"    # the method the label says, as relabelled
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("transfer, syntax, profile, max_level", [
    ("h264", "1.2.840.10008.1.2.4.102", "High", 41), ("hevc", "1.2.840.10008.1.2.4.107", "Main", 153)])
def test_clips_land_in_their_ordered_studies_in_orthanc_once_as_valid_dicom_video(
        tmp_path, clinic_keys, appliance_cli, transfer, syntax, profile, max_level, commitment_port):  # noqa: F811
    usb = tmp_path / "usb"
    record(usb, clinic_keys, card=CARD, frames=30)
    record(usb, clinic_keys, card=YAMADA, frames=20)
    orthanc = Orthanc().start(tmp_path, extra_config={
        "DicomModalities": {"gateway": ["TREATMENT_GW", "127.0.0.1", commitment_port]}})
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port, directories=[usb])
    config.write_text(config.read_text().replace('[pacs]', f'[pacs]\ntransfer = "{transfer}"'))
    try:
        result = appliance_cli("gateway", "sync", "--config", str(config), timeout=300)
        lines = result.stdout.decode().splitlines()
        assert result.returncode == 0, (lines, result.stderr)
        assert sum("delivered, 1 instance(s) confirmed by the PACS" in line for line in lines) == 2, lines
        again = appliance_cli("gateway", "sync", "--config", str(config), timeout=300)
        assert again.returncode == 0 and "0 delivered in this pass, 0 not delivered" in again.stdout.decode()
        instances = orthanc.rest("/instances")
        assert len(instances) == 2
        seen = {}
        for instance in instances:
            data = orthanc.rest(f"/instances/{instance}/file")
            dataset = pydicom.dcmread(io.BytesIO(data))
            assert dciodvfy_report(tmp_path, validatable(data)) == []     # no error, not even a warning
            assert dataset.file_meta.TransferSyntaxUID == syntax      # exactly the syntax proposed
            with av.open(io.BytesIO(mp4_of(dataset))) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.profile == profile and 0 < stream.codec_context.level <= max_level
                frames = sum(1 for _ in container.decode(video=0))
            assert frames == dataset.NumberOfFrames
            seen[str(dataset.PatientName)] = (str(dataset.StudyInstanceUID), frames)
        assert seen == {"Müller^Zoë": (STUDY, 30), "Yamada^Tarou=山田^太郎=やまだ^たろう": (STUDY + ".1", 20)}
    finally:
        orthanc.stop()
    for path in (tmp_path / "state").rglob("*"):       # the gateway's own files: no patient data
        if path.is_file():
            content = path.read_bytes()
            assert "Müller".encode() not in content and "山田".encode() not in content and b"19761105" not in content
