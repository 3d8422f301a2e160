"""What the gateway accepts: vault v1 and v2 test vectors verify when their device is enrolled;
another device, a renamed file or a modified byte is refused with one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance import vault
from appliance.gateway.verify import enrolled_devices, verify_recording

VECTORS = Path(__file__).parent / "vectors" / "vault"
# The rewrapped vector's manifest was signed before the file got its vector name: it goes back
# under the name it was signed for (a recording is identified by the name its manifest signs).
CASES = [("two-segments.vault", "device.pub", 1), ("v2-two-segments.vault", "v2-device.pub", 2),
         ("v2-two-segments-rewrapped.vault", "v2-device.pub", 2)]
SIGNED_NAMES = {"v2-two-segments-rewrapped.vault": "v2-two-segments.vault"}


def copy_of(name: str, directory: Path, as_name: str | None = None) -> Path:
    target = directory / (as_name or SIGNED_NAMES.get(name, name))
    shutil.copy(VECTORS / name, target)
    shutil.copy(VECTORS / (name + ".manifest"), target.with_name(target.name + ".manifest"))
    return target


@pytest.mark.parametrize("name, device, version", CASES)
def test_a_vector_v1_or_v2_rewrapped_or_not_verifies_when_its_device_is_enrolled(tmp_path, name, device, version):
    verdict = verify_recording(copy_of(name, tmp_path), [vault.keys.load_device_public(VECTORS / device)])
    assert verdict.ok, verdict.problem
    assert verdict.signed["vault_version" if version == 2 else "format"] in (2, "treatment-vault-manifest/1")
    assert verdict.recording_id == verdict.signed["recording_id"]


@pytest.mark.parametrize("name, device, version", CASES)
def test_a_vector_from_a_device_nobody_enrolled_is_refused(tmp_path, name, device, version):
    other = "v2-device.pub" if device == "device.pub" else "device.pub"
    verdict = verify_recording(copy_of(name, tmp_path), [vault.keys.load_device_public(VECTORS / other)])
    assert not verdict.ok and verdict.problem.endswith("which is not enrolled")
    assert verify_recording(copy_of(name, tmp_path), []).problem.endswith("which is not enrolled")


def test_a_renamed_recording_or_a_modified_byte_is_refused(tmp_path):
    devices = [vault.keys.load_device_public(VECTORS / "v2-device.pub")]
    renamed = copy_of("v2-two-segments.vault", tmp_path, as_name="another.mp4.vault")
    verdict = verify_recording(renamed, devices)
    assert verdict.problem == "the manifest was signed for v2-two-segments.vault, not another.mp4.vault"
    modified = copy_of("v2-two-segments.vault", tmp_path)
    data = bytearray(modified.read_bytes())
    data[len(data) // 2] ^= 0x80
    modified.write_bytes(bytes(data))
    assert "the vault was modified" in verify_recording(modified, devices).problem


def test_the_enrolled_devices_are_the_pub_files_of_the_directory(tmp_path):
    shutil.copy(VECTORS / "device.pub", tmp_path / "room-1.pub")
    shutil.copy(VECTORS / "v2-device.pub", tmp_path / "room-2.pub")
    (tmp_path / "notes.txt").write_text("not a key")
    assert len(enrolled_devices(tmp_path)) == 2
