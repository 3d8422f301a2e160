"""Shared parts of the gateway tests: a clinic's keys, real sealed recordings in the export
format, the gateway's settings file, and the gateway run as the `appliance` CLI."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import vault
from appliance.vault import identity_card
from tests.clips import write_clip

PASSPHRASE = "gateway test passphrase"
# What a worklist session seals into each recording (identity card fields but format and recording_id).
A_CARD = {"source": "worklist", "patient_name": "Müller^Zoë", "patient_id": "PID-0042", "birth_date": "19761105",
          "sex": "F", "accession_number": "ACC-7", "study_instance_uid": "1.2.826.0.1.3680043.8.498.4242",
          "requested_procedure": "Laser treatment", "scheduled_step_id": "SPS-3",
          "scheduled_start": "20261201093000", "operator_id": "op-11"}


@dataclass(frozen=True)
class ClinicKeys:
    recipient_pub: Path
    recipient_key: Path
    passphrase_file: Path
    device_key: Path
    devices: Path            # the gateway's enrolled devices directory
    stranger_key: Path       # a device nobody enrolled


@pytest.fixture(scope="module")
def clinic_keys(tmp_path_factory) -> ClinicKeys:
    base = tmp_path_factory.mktemp("clinic-keys")
    recipient_key, recipient_pub = vault.keys.generate_recipient(base / "recipient", PASSPHRASE.encode())
    device_key, device_pub = vault.keys.generate_device(base / "device")
    stranger_key, _ = vault.keys.generate_device(base / "stranger")
    devices = base / "devices"
    devices.mkdir()
    shutil.copy(device_pub, devices / "room-1.pub")
    passphrase_file = base / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    return ClinicKeys(recipient_pub, recipient_key, passphrase_file, device_key, devices, stranger_key)


def record(export_dir: Path, keys: ClinicKeys, *, session: str | None = None, frames: int = 12,
           interrupted: bool = False, device_key: Path | None = None, card: dict | None = A_CARD) -> Path:
    """A real recording as the appliance exports it: `<session>/<recording>.mp4.vault` + manifest,
    with `card` (identity card fields but format and recording_id) sealed into the manifest;
    `card=None`: a recording from before worklist support, without one."""
    session = session or uuid.uuid4().hex
    recording = uuid.uuid4().hex
    directory = export_dir / session
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{recording}.mp4.vault"
    recipient = vault.keys.load_recipient_public(keys.recipient_pub)
    with open(path, "wb") as out:
        # an interrupted clip keeps only complete segments: noisy frames fill a few
        sealed = write_clip(out, recipient, frames * 4 if interrupted else frames, noisy=interrupted,
                            seal=not interrupted)
    signer = vault.keys.load_device_key(device_key or keys.device_key)
    metadata = {"session": session, "recording": recording}
    if card is not None:
        recording_id = vault.manifest.read_vault_header(path).recording_id
        full_card = {"format": identity_card.FORMAT, "recording_id": recording_id.hex(), **card}
        metadata["identity_card"] = identity_card.seal_card(full_card, [recipient], recording_id)
    if interrupted:
        vault.mark_interrupted(path, signer, metadata | {"reason": "power lost"})
    else:
        vault.write_manifest(path, signer, metadata=metadata | {"frames": frames}, sealed=sealed)
    return path


def write_config(path: Path, keys: ClinicKeys, data: Path, *, pacs_port: int, called_ae: str,
                 commitment_port: int = 11113, confirm: str = "auto", directories=(), retry_s: float = 30,
                 refresh_s: float = 60, archive: str = "") -> Path:
    dirs = ", ".join(f'"{d}"' for d in directories)
    # The production timeouts: no test waits for one to expire, and on a loaded two-core machine a
    # full-size transcode beside Orthanc's commitment has been seen to outlast 30 s once.
    path.write_text(f"""
[gateway]
identity = "{keys.recipient_key}"
passphrase_file = "{keys.passphrase_file}"
devices = "{keys.devices}"
data = "{data}"
directories = [{dirs}]
retry_s = {retry_s}
refresh_s = {refresh_s}
{archive}
[pacs]
host = "127.0.0.1"
port = {pacs_port}
called_ae = "{called_ae}"
calling_ae = "TREATMENT_GW"
confirm = "{confirm}"
commitment_port = {commitment_port}
commitment_bind = "127.0.0.1"
commitment_timeout_s = 120
timeout_s = 60
""")
    return path


def flip_a_body_bit(vault_path: Path) -> None:
    data = bytearray(vault_path.read_bytes())
    data[-100] ^= 0x01
    vault_path.write_bytes(bytes(data))


def small_instances(vault_path: Path, signed: dict, identity, transfer: str):
    """Stands in for the media pipeline (dicom_object.build_instances) in tests about delivery,
    not media: one small instance per recording, holding the first decrypted bytes, with UIDs
    derived from the recording id as the real ones are (so a repeated send is the same instance)."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    from appliance.gateway.pacs import TRANSFER_SYNTAXES

    with vault.open_reader(vault_path, identity) as reader:
        head = reader.read(4096)
    recording, session = signed["recording_id"], signed["metadata"]["session"]
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = TRANSFER_SYNTAXES[transfer]
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4.1"
    dataset.SOPInstanceUID = generate_uid(entropy_srcs=["instance", recording])
    dataset.StudyInstanceUID = generate_uid(entropy_srcs=["study", session])
    dataset.SeriesInstanceUID = generate_uid(entropy_srcs=["series", session])
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.PatientName, dataset.PatientID, dataset.Modality = "Müller^Zoë", "P-0001", "XC"
    dataset.PixelData = encapsulate([head])
    dataset["PixelData"].VR = "OB"
    yield dataset
