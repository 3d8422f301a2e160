"""The one atomic-write helper: all or nothing, the old file intact on failure, private by
default, and the rename made durable by syncing the directory."""

from __future__ import annotations

import os
import stat

import pytest

from appliance.atomic import create_atomically, write_atomically
from appliance.errors import BadInput


def test_writes_a_private_file(tmp_path):
    path = tmp_path / "device.key"
    write_atomically(path, b"secret")
    assert path.read_bytes() == b"secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["device.key"]


def test_a_requested_mode_is_honoured(tmp_path):
    write_atomically(tmp_path / "recipient.pub", b"public", mode=0o644)
    assert stat.S_IMODE((tmp_path / "recipient.pub").stat().st_mode) == 0o644


def test_a_failure_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "service-pin"
    write_atomically(path, b"old record\n")
    with pytest.raises(RuntimeError, match="power cut"):
        with create_atomically(path, overwrite=True) as out:
            out.write(b"half a rec")
            raise RuntimeError("power cut")
    assert path.read_bytes() == b"old record\n"
    assert os.listdir(tmp_path) == ["service-pin"]


def test_an_existing_file_is_kept_unless_overwrite_is_asked(tmp_path):
    path = tmp_path / "out.mp4"
    write_atomically(path, b"first")
    with pytest.raises(BadInput, match="refusing to overwrite"):
        write_atomically(path, b"second")
    assert path.read_bytes() == b"first"
    write_atomically(path, b"second", overwrite=True)
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_a_missing_directory_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        write_atomically(tmp_path / "nowhere" / "file", b"x")


def test_the_file_is_synced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    path = tmp_path / "manifest"
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        info = os.fstat(fd)
        synced.append(("directory" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino, path.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_atomically(path, b"signed")
    assert synced == [("file", path.stat().st_ino, False), ("directory", tmp_path.stat().st_ino, True)]
