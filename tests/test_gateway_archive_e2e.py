"""The whole way, every part real: the headless appliance (1920x1200 synthetic camera) opens
sessions from the clinic's worklist (Orthanc's worklist plugin, one entry in Japanese), records
clips on the footswitch -> `appliance archive push` into SeaweedFS -> `appliance gateway sync`
from the bucket -> the same Orthanc as the PACS, confirmed by storage commitment. Each clip is
one instance in its worklist entry's study, as recorded frame for frame (stamps read back after
the resize to 1728x1080) at level <= 4.1, dciodvfy clean, the names intact; a second sync sends
nothing."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import av
import cv2
import pydicom

from appliance import vault
from appliance.camera.stamp import decoded_stamps, read_index
from appliance.storage.reader import StoreReader
from firmware_bridge.simulator import Simulator
from tests.gatewaying import PASSPHRASE, clinic_keys, write_config  # noqa: F401 (fixture)
from tests.servers import commitment_port, end_process  # noqa: F401  (commitment_port: a fixture)
from tests.servers.orthanc import Orthanc
from tests.servers.seaweedfs import unique_bucket
from tests.servers.worklist_files import JAPANESE, STEADY_DAY_ENV, write_worklist_file
from tests.test_gateway_dicom import dciodvfy_errors, mp4_of
from tests.test_session_identity_headless import Headless
from tests.test_worklist_query import MUELLER, ROOM, YAMADA
from tests.waiting import wait_for

CAMERA = (1920, 1200)
SEGMENT = 65536     # a vault segment's plaintext: three of them on disk mean the clip is under way


def appliance_config(tmp_path, keys, worklist: Orthanc, s3, bucket: str, controller_port: str):
    credentials = s3.write_credentials(tmp_path / "appliance-s3-credentials")
    path = tmp_path / "appliance.toml"
    path.write_text(f"""
[data]
dir = "{tmp_path / 'data'}"
[camera]
width = {CAMERA[0]}
height = {CAMERA[1]}
[controller]
port = "{controller_port}"
[recording]
pre_roll_s = 1.0
post_roll_s = 0.5
[storage]
max_session_minutes = 1
reserve_mb = 1
[keys]
recipients = ["{keys.recipient_pub}"]
device_key = "{keys.device_key}"
[worklist]
host = "127.0.0.1"
port = {worklist.dicom_port}
called_ae = "{worklist.aet}"
calling_ae = "TREATMENT1"
station_ae = "{ROOM}"
refresh_s = 3600.0
[archive]
endpoint = "{s3.endpoint}"
bucket = "{bucket}"
credentials = "{credentials}"
retention_days = 1
""")
    return path


def record_clip(appliance: Headless, simulator: Simulator, data_dir, clips: int) -> None:
    """Footswitch down until the new clip has a few segments on disk, then up; back to Armed."""
    before = set(data_dir.glob("sessions/*/*.vault"))
    simulator.press()
    appliance.state("Recording")
    wait_for(lambda: any(path.stat().st_size > 3 * SEGMENT
                         for path in set(data_dir.glob("sessions/*/*.vault")) - before), 30, "the clip's first segments")
    simulator.release()
    wait_for(lambda: appliance.status.get("state") == "Armed" and appliance.status.get("clips") == clips, 60,
             f"clip {clips} sealed")


def record_sessions(tmp_path, config_for, data_dir):
    """Two sessions opened by accession number (as a barcode scanner on the order would):
    Yamada with two clips, Müller with one. Returns the appliance's settings file."""
    with Simulator(str(tmp_path / "controller")) as simulator:
        config = config_for(simulator.link_path)
        log = open(tmp_path / "appliance.stderr", "ab")
        service = appliance = None
        try:
            service = subprocess.Popen([sys.executable, "-m", "appliance.cli", "worklist", "run", "--config",
                                        str(config)], stdout=log, stderr=log, env={**os.environ, **STEADY_DAY_ENV})
            wait_for(lambda: (data_dir / "run" / "worklist.sock").exists(), 60, "the worklist socket")
            appliance = Headless(config, tmp_path / "appliance.stderr")
            appliance.state("Idle")
            for accession, clips in (("ACC-2", 2), ("ACC-1", 1)):
                assert appliance.reply_to(f"begin --accession {accession} TECH-1")["ok"]
                appliance.state("Armed")
                for clip in range(1, clips + 1):
                    record_clip(appliance, simulator, data_dir, clip)
                assert appliance.reply_to("end")["ok"]
                appliance.state("Idle")
            assert appliance.reply_to("quit")["ok"]
            assert appliance.process.wait(30) == 0
        finally:
            if appliance is not None:
                end_process(appliance.process)
            end_process(service)
            log.close()
    return config


def recorded_stamps(data_dir, identity) -> dict[str, list[int]]:
    """recording uid -> the frame stamps of the sealed recording, as the appliance kept it."""
    reader = StoreReader(data_dir)
    try:
        recordings = [r for summary in reader.sessions() for r in reader.recordings(summary.session.uid)]
    finally:
        reader.close()
    assert [r.state for r in recordings] == ["sealed"] * 3
    stamps = {}
    for recording in recordings:
        with vault.open_reader(recording.path, identity) as plaintext:
            stamps[recording.uid] = decoded_stamps(plaintext)
    return stamps


def delivered_stamps(mp4: bytes) -> tuple[list[int], str, int]:
    """(frame stamps read after scaling back to the camera's size, profile, level)."""
    with av.open(io.BytesIO(mp4)) as container:
        context = container.streams.video[0].codec_context
        stamps = [read_index(cv2.resize(frame.to_ndarray(format="bgr24"), CAMERA, interpolation=cv2.INTER_LINEAR))
                  for frame in container.decode(video=0)]
        return stamps, context.profile, context.level


def test_worklist_sessions_reach_the_pacs_through_the_archive_once_each_clip_frame_for_frame(
        tmp_path, clinic_keys, seaweedfs, appliance_cli, commitment_port):  # noqa: F811
    worklists = tmp_path / "worklists"
    worklists.mkdir(mode=0o700)
    write_worklist_file(worklists, YAMADA, station_ae=ROOM, character_set=JAPANESE)
    write_worklist_file(worklists, MUELLER, station_ae=ROOM)
    clinic = Orthanc().start(tmp_path, worklists_dir=worklists, extra_config={   # the RIS and the PACS
        "DicomModalities": {"gateway": ["TREATMENT_GW", "127.0.0.1", commitment_port]}})
    bucket = seaweedfs.create_bucket(unique_bucket("e2e"))
    data_dir = tmp_path / "data"
    gateway = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "gateway", pacs_port=clinic.dicom_port,
                           called_ae=clinic.aet, commitment_port=commitment_port, archive=(
                               f'[archive]\nendpoint = "{seaweedfs.endpoint}"\nbucket = "{bucket}"\n'
                               f'credentials = "{seaweedfs.write_credentials(tmp_path / "gateway-s3-credentials")}"'))
    try:
        config = record_sessions(tmp_path, lambda port: appliance_config(tmp_path, clinic_keys, clinic, seaweedfs,
                                                                         bucket, port), data_dir)
        identity = vault.keys.load_identity(clinic_keys.recipient_key, PASSPHRASE.encode())
        recorded = recorded_stamps(data_dir, identity)
        assert all(len(stamps) >= 10 for stamps in recorded.values())     # clips of frames, not a few

        pushed = appliance_cli("archive", "push", "--config", str(config), timeout=120)
        assert pushed.returncode == 0, pushed.stderr.decode()
        assert "archived 3 recording(s)" in pushed.stdout.decode()

        synced = appliance_cli("gateway", "sync", "--config", str(gateway), timeout=300)
        lines = synced.stdout.decode().splitlines()
        assert synced.returncode == 0, (lines, synced.stderr.decode())
        assert sum(line.startswith(f"s3:{bucket}/") and "delivered, 1 instance(s) confirmed by the PACS" in line
                   for line in lines) == 3, lines

        instances = clinic.rest("/instances")
        assert len(instances) == 3
        studies = {}
        for instance in instances:
            tags = clinic.rest(f"/instances/{instance}/simplified-tags")     # as the PACS read it
            data = clinic.rest(f"/instances/{instance}/file")
            dataset = pydicom.dcmread(io.BytesIO(data))
            assert dciodvfy_errors(tmp_path, data) == []
            assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.102"
            assert (dataset.Columns, dataset.Rows) == (1728, 1080)
            stamps, profile, level = delivered_stamps(mp4_of(dataset))
            assert profile == "High" and 0 < level <= 41
            assert len(stamps) == dataset.NumberOfFrames
            assert stamps in recorded.values() and stamps == sorted(set(stamps))   # every recorded frame, in order
            studies.setdefault((tags["StudyInstanceUID"], tags["PatientName"], tags["PatientID"],
                                tags["AccessionNumber"]), []).append(stamps)
        assert {key: len(clips) for key, clips in studies.items()} == {
            (YAMADA.study_instance_uid, YAMADA.patient_name, YAMADA.patient_id, "ACC-2"): 2,
            (MUELLER.study_instance_uid, MUELLER.patient_name, MUELLER.patient_id, "ACC-1"): 1}
        assert sorted(map(tuple, (s for clips in studies.values() for s in clips))) == \
            sorted(map(tuple, recorded.values()))                                # each clip exactly once

        again = appliance_cli("gateway", "sync", "--config", str(gateway), timeout=300)
        assert again.returncode == 0 and "0 delivered in this pass, 0 not delivered" in again.stdout.decode()
        assert len(clinic.rest("/instances")) == 3
    finally:
        clinic.stop()
    for path in (tmp_path / "gateway").rglob("*"):      # the gateway's own files: no patient data
        if path.is_file():
            content = path.read_bytes()
            assert not any(secret.encode() in content for secret in ("Müller", "山田", "Yamada", YAMADA.birth_date,
                                                                     MUELLER.birth_date)), path.name
