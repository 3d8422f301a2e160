"""The archive bucket as the gateway's source (real SeaweedFS, the pinned object layout): new
recordings delivered, one whose manifest has not arrived yet waits for it, an altered one is
refused, a USB copy of an archived recording is not sent twice, an unreachable archive is one line;
the archive's credentials file is read as the archive reads it (one format, one reader)."""

from __future__ import annotations

from appliance import vault
from tests.gatewaying import clinic_keys, flip_a_body_bit, record, write_config  # noqa: F401
from tests.servers import commitment_port, free_port  # noqa: F401  (commitment_port: a fixture)
from tests.servers.orthanc import Orthanc
from tests.servers.seaweedfs import unique_bucket, write_credentials
from tests.test_gateway_end_to_end import CARD


def archive_section(tmp_path, endpoint: str, bucket: str, access_key: str, secret_key: str) -> str:
    credentials = write_credentials(tmp_path / "s3.credentials", access_key, secret_key)
    return f'[archive]\nendpoint = "{endpoint}"\nbucket = "{bucket}"\ncredentials = "{credentials}"\nretention_days = 0'


def upload(s3, bucket: str, vault_path, *, manifest: bool = True) -> str:
    """As the archive lays a recording out: <device id>/<session uid>/<recording uid>.mp4.vault."""
    signed, _ = vault.manifest.read_signed(vault_path)
    key = f"{signed['device_key_id']}/{vault_path.parent.name}/{vault_path.name}"
    s3.upload_file(str(vault_path), bucket, key)
    if manifest:
        s3.upload_file(str(vault_path) + ".manifest", bucket, key + ".manifest")
    return key


def test_new_archived_recordings_are_delivered_once_each_and_altered_ones_refused(
        tmp_path, clinic_keys, seaweedfs, appliance_cli, commitment_port):  # noqa: F811
    bucket = seaweedfs.create_bucket(unique_bucket("gateway"), object_lock=False)
    s3 = seaweedfs.client()
    recordings = tmp_path / "appliance"
    first, late, altered = (record(recordings, clinic_keys, card=CARD) for _ in range(3))
    upload(s3, bucket, first)
    late_key = upload(s3, bucket, late, manifest=False)       # its manifest is still on its way
    flip_a_body_bit(altered)
    altered_key = upload(s3, bucket, altered)
    usb = tmp_path / "usb"
    (usb / first.parent.name).mkdir(parents=True)
    for suffix in ("", ".manifest"):                          # the same recording on a USB stick too
        (usb / first.parent.name / (first.name + suffix)).write_bytes((first.parent / (first.name + suffix)).read_bytes())
    orthanc = Orthanc().start(tmp_path, extra_config={
        "DicomModalities": {"gateway": ["TREATMENT_GW", "127.0.0.1", commitment_port]}})
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=orthanc.dicom_port,
                          called_ae=orthanc.aet, commitment_port=commitment_port, directories=[usb],
                          archive=archive_section(tmp_path, seaweedfs.endpoint, bucket,
                                                  seaweedfs.access_key, seaweedfs.secret_key))
    try:
        result = appliance_cli("gateway", "sync", "--config", str(config), timeout=300)
        lines = result.stdout.decode().splitlines()
        assert result.returncode == 1, (lines, result.stderr)
        assert any(line.startswith(f"s3:{bucket}/") and "delivered, 1 instance(s)" in line for line in lines), lines
        assert any(altered_key in line and "refused, nothing sent" in line for line in lines), lines
        assert any(line.startswith("dir:") and "already delivered from s3:" in line for line in lines), lines
        assert not any(late_key in line for line in lines)
        assert len(orthanc.rest("/instances")) == 1
        s3.upload_file(str(late) + ".manifest", bucket, late_key + ".manifest")
        again = appliance_cli("gateway", "sync", "--config", str(config), timeout=300)
        lines = again.stdout.decode().splitlines()
        assert any(late_key in line and "delivered, 1 instance(s)" in line for line in lines), lines
        assert len(orthanc.rest("/instances")) == 2
        assert not list((tmp_path / "state" / "incoming").iterdir())   # downloads are removed after
    finally:
        orthanc.stop()


def test_an_unreachable_archive_is_one_line_and_the_other_sources_still_pass(tmp_path, clinic_keys, appliance_cli):
    usb = tmp_path / "usb"
    flip_a_body_bit(record(usb, clinic_keys))
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=free_port(),
                          called_ae="PACS", directories=[usb], archive=archive_section(
                              tmp_path, f"http://127.0.0.1:{free_port()}", "nowhere", "key", "secret"))
    result = appliance_cli("gateway", "sync", "--config", str(config), timeout=300)
    lines = result.stdout.decode().splitlines()
    assert result.returncode == 1
    assert len([line for line in lines if "not read this pass" in line]) == 1, lines
    assert len([line for line in lines if line.startswith("dir:") and "refused, nothing sent" in line]) == 1, lines
    assert b"Traceback" not in result.stderr


def test_a_credentials_file_the_archive_would_not_read_is_one_line_and_exit_2(tmp_path, clinic_keys, appliance_cli):
    section = archive_section(tmp_path, "http://127.0.0.1:9", "bucket", "key", "secret")
    config = write_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "state", pacs_port=free_port(),
                          called_ae="PACS", archive=section)
    credentials = tmp_path / "s3.credentials"
    credentials.write_text('access_key = "key"\nsecret_key = "secret"\n')   # the gateway's old TOML form
    old = appliance_cli("gateway", "sync", "--config", str(config))
    assert old.returncode == 2
    assert old.stderr.decode().splitlines() == [
        f"appliance: archive: credentials file {credentials} is not an AWS-style INI credentials file "
        f"(line 1: no [section] header before it)"]
    write_credentials(credentials, "key", "secret")
    credentials.chmod(0o644)
    loose = appliance_cli("gateway", "sync", "--config", str(config))
    assert loose.returncode == 2 and "must be readable by its owner only" in loose.stderr.decode()
    assert b"secret" not in old.stderr + loose.stderr
    assert not (tmp_path / "state").exists()
