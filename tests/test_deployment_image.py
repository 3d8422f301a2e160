"""The kiosk image, built for real with kiosk_image/build (mmdebstrap), inspected inside, and
booted in a virtual machine (QEMU) to watch systemd run the kiosk and its watchdog.

Opt-in (RUN_SLOW=1): it needs root, Debian's mirror and the PyPI wheels. It took 137 s here
(76 s to build with a kernel, 60 s to boot and watch under QEMU's software CPU; 2 shared cores),
so CI could enable it by setting RUN_SLOW=1 in .ci/run. Where loop devices exist it also makes the
tree into a bootable disk with kiosk_image/disk (7-13 s) and boots that from its own GRUB (about
60 s): 211 s in all.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from appliance import __version__

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = "/opt/appliance/venv/bin"
SITE_PACKAGES = "/opt/appliance/venv/lib/python3.11/site-packages"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("RUN_SLOW") != "1", reason="builds the OS image; set RUN_SLOW=1"),
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root and chroot need root"),
]


def in_image(root: Path, *command: str, user: str | None = None) -> subprocess.CompletedProcess:
    chroot = ["chroot", *([f"--userspec={user}:{user}"] if user else []), str(root)]
    return subprocess.run([*chroot, "env", "-i", "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/",
                           *command], capture_output=True, text=True, timeout=300)


def disk_packages() -> str:
    return subprocess.run([str(REPO / "kiosk_image/disk"), "--packages"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """Builds the root filesystem as a directory, with a real clinic recipient key and a
    stand-in Allied Vision archive (the real one is licensed to the site)."""
    work = tmp_path_factory.mktemp("image")
    subprocess.run([str(REPO / "scripts/ensure-debian-packages"), "mmdebstrap"], check=True, timeout=600)
    (work / "passphrase").write_text("correct horse battery staple\n")
    subprocess.run([sys.executable, "-m", "appliance.cli", "keys", "init", "--dir", str(work / "clinic"),
                    "--passphrase-file", str(work / "passphrase")], check=True, capture_output=True, timeout=120)
    (work / "VimbaX/cti").mkdir(parents=True)
    (work / "VimbaX/cti/VimbaUSBTL.cti").write_bytes(b"\x7fELF")
    with tarfile.open(work / "VimbaX.tar.gz", "w:gz") as archive:
        archive.add(work / "VimbaX", arcname="VimbaX_2024-1")
    root = work / "rootfs"
    build = subprocess.run(
        [str(REPO / "kiosk_image/build"), str(root)], capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHON": sys.executable, "IMAGE_WORK_DIR": str(work / "build"),
             "IMAGE_EXTRA_PACKAGES": disk_packages(),          # kernel and GRUB for the boot tests
             "RECIPIENT_KEYS": str(work / "clinic/recipient.pub"),
             "ALLIED_VISION_TL": str(work / "VimbaX.tar.gz")})
    assert build.returncode == 0, build.stderr[-3000:]
    return root


def test_kiosk_is_enabled_and_boots_graphical(image):
    enabled = subprocess.run(["systemctl", f"--root={image}", "is-enabled", "appliance-kiosk.service",
                              "appliance-headless.service"], capture_output=True, text=True)
    assert enabled.stdout.split() == ["enabled", "disabled"]
    assert (image / "etc/systemd/system/default.target").resolve().name == "graphical.target"


def test_units_verify_inside_the_image_without_stand_ins(image):
    units = sorted(path.name for path in (REPO / "systemd").glob("*.service"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={image}", *units],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_appliance_runs_from_the_image_venv(image):
    result = in_image(image, f"{VENV_BIN}/appliance", "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"appliance {__version__}")


def test_kiosk_user_exists_with_serial_and_camera_groups(image):
    result = in_image(image, "id", "-nG", "kiosk")
    assert result.returncode == 0, result.stderr
    assert {"kiosk", "dialout", "video"} <= set(result.stdout.split())


def kiosk_ids(image: Path) -> tuple[int, int]:
    passwd = dict(line.split(":", 1) for line in (image / "etc/passwd").read_text().splitlines())
    uid, gid = (int(field) for field in passwd["kiosk"].split(":")[1:3])
    return uid, gid


def kiosk_uid(image: Path) -> int:
    return kiosk_ids(image)[0]


def test_data_directory_belongs_to_the_kiosk_user_alone(image):
    uid, gid = kiosk_ids(image)
    for directory in ("var/lib/appliance", "var/lib/appliance/keys"):
        info = (image / directory).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o700, uid, gid)


def test_first_boot_key_command_works_as_the_kiosk_user(image):
    keys = image / "var/lib/appliance/keys"
    try:
        result = in_image(image, f"{VENV_BIN}/appliance", "keys", "device", "--dir", "/var/lib/appliance/keys",
                          user="kiosk")
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE((keys / "device.key").stat().st_mode) == 0o600
    finally:   # the image must reach its first boot without a device key
        for made in keys.iterdir():
            made.unlink()


def test_provisioned_settings_load_inside_the_image(image):
    script = ("from pathlib import Path; from appliance.config import load; "
              "s = load(Path('/etc/appliance/appliance.toml')); print(*s.recipient_paths)")
    result = in_image(image, f"{VENV_BIN}/python", "-c", script, user="kiosk")
    assert (result.returncode, result.stdout.split()) == (0, ["/etc/appliance/recipients/recipient.pub"]), result.stderr
    assert not list(image.glob("etc/appliance/recipients/*.key"))


def test_allied_vision_transport_layer_is_on_the_genicam_path(image):
    environment = (image / "etc/appliance/genicam.env").read_text()
    assert "GENICAM_GENTL64_PATH=/opt/allied-vision/VimbaX_2024-1/cti\n" in environment
    assert (image / "opt/allied-vision/VimbaX_2024-1/cti/VimbaUSBTL.cti").is_file()


def test_qt_starts_in_the_image_and_its_wayland_plugin_has_every_library(image):
    started = in_image(image, "env", "QT_QPA_PLATFORM=offscreen", f"{VENV_BIN}/python", "-c",
                       "from PySide6.QtWidgets import QApplication; print(QApplication([]).platformName())")
    assert (started.returncode, started.stdout.strip()) == (0, "offscreen"), started.stderr
    plugin = f"{SITE_PACKAGES}/PySide6/Qt/plugins/platforms/libqwayland.so"
    linked = in_image(image, "ldd", plugin)
    assert linked.returncode == 0 and "not found" not in linked.stdout, linked.stdout


def test_session_and_compositor_pieces_are_installed(image):
    # Found missing by booting the image in a VM: Debian's cage exits when it cannot find
    # Xwayland, and without seatd nobody hands cage the display.
    for path in ("usr/bin/cage", "usr/bin/Xwayland", "usr/sbin/seatd", "usr/lib/systemd/system/seatd.service",
                 "usr/lib/x86_64-linux-gnu/security/pam_unix.so", "etc/pam.d/appliance-kiosk",
                 "usr/lib/udev/rules.d/70-treatment-appliance.rules", "usr/lib/modules-load.d/appliance.conf"):
        assert (image / path).exists(), path


# -- booting the image ------------------------------------------------------------------------

# A test-only unit put on the VM's disk (never into the image): once the kiosk has reported
# READY=1 it stops the UI process with SIGSTOP, as a hung GUI thread would look to systemd.
FREEZE_UNIT = r"""[Unit]
Description=Test: freeze the kiosk UI once it is up
After=appliance-kiosk.service
[Service]
Type=oneshot
ExecStartPre=/bin/sh -c 'grep -E " (ttyACM|drm)$$" /proc/devices | sed "s/^/device class: /"'
ExecStart=/bin/sh -c 'for p in /proc/[0-9]*; do if tr "\\0" " " < $$p/cmdline 2>/dev/null | grep -q "^/opt/appliance/venv/bin/python[0-9.]* /opt/appliance/venv/bin/appliance kiosk"; then echo "freezing UI pid $${p#/proc/}"; kill -STOP $${p#/proc/}; fi; done'
StandardOutput=journal+console
"""


def wait_for_line(log: Path, pattern: str, deadline: float, after: int = 0) -> int:
    """Position just past the first match of `pattern` in `log` after offset `after`."""
    regex = re.compile(pattern)
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = regex.search(text, after)
        if found:
            return found.end()
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} on the console in time; last lines:\n" + "\n".join(text.splitlines()[-25:]))
        time.sleep(0.5)


# Journal lines (the watchdog's, seatd's, the freeze unit's) must reach the serial console the
# test reads, however the kernel command line was made.
JOURNAL_TO_SERIAL = "[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyS0\n"


def put_test_units_on(filesystem: str, tmp_path: Path) -> None:
    """Writes the freeze unit and journal forwarding into the VM's ext4 root with debugfs;
    `filesystem` is an ext4 image, or 'DISK?offset=BYTES' for a partition inside a disk image."""
    (tmp_path / "freeze.service").write_text(FREEZE_UNIT)
    (tmp_path / "journal.conf").write_text(JOURNAL_TO_SERIAL)
    (tmp_path / "debugfs.cmd").write_text(
        f"write {tmp_path / 'freeze.service'} /etc/systemd/system/appliance-test-freeze.service\n"
        "symlink /etc/systemd/system/multi-user.target.wants/appliance-test-freeze.service "
        "/etc/systemd/system/appliance-test-freeze.service\n"
        "mkdir /etc/systemd/journald.conf.d\n"
        f"write {tmp_path / 'journal.conf'} /etc/systemd/journald.conf.d/appliance-test-serial.conf\n")
    subprocess.run(["debugfs", "-w", "-f", str(tmp_path / "debugfs.cmd"), filesystem], check=True,
                   capture_output=True, timeout=60)


def boot_and_watch_the_kiosk(image: Path, boot: list[str], console: Path) -> str:
    """Boots a VM from `boot` (QEMU arguments naming the disk, and the kernel if not the disk's
    own) and follows its serial console: first-boot key, kiosk READY=1, the test unit freezes the
    UI, the watchdog fires, the kiosk comes back. Returns the console log."""
    # QEMU's software CPU: it needs no /dev/kvm, and KVM nested in this machine's VM hangs early.
    vm = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", "2048", "-smp", "2",
         *boot, "-device", "virtio-vga", "-display", "none",
         "-serial", f"file:{console}", "-nic", "none", "-no-reboot"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        wait_for_line(console, r"wrote /var/lib/appliance/keys/device\.key", deadline)   # first boot
        up = wait_for_line(console, r"Started appliance-kiosk\.service", deadline)         # READY=1
        frozen = wait_for_line(console, r"freezing UI pid \d+", deadline, up)
        fired = wait_for_line(console, r"appliance-kiosk\.service: Watchdog timeout \(limit 20s\)", deadline, frozen)
        wait_for_line(console, r"Started appliance-kiosk\.service", deadline, fired)       # back up
        log = console.read_text(errors="replace")
        assert "segfault" not in log
        # modules-load.d registered the classes the units' DeviceAllow= names, with no board plugged in
        assert re.search(r"device class: 166 ttyACM", log) and re.search(r"device class: 226 drm", log)
        seat_client = re.search(r"New client connected \(pid: \d+, uid: (\d+)", log)   # cage, via seatd
        assert seat_client and int(seat_client.group(1)) == kiosk_uid(image)
        return log
    finally:
        vm.kill()
        vm.wait(timeout=30)


def test_image_boots_into_the_kiosk_and_the_watchdog_restarts_a_frozen_ui(image, tmp_path):
    subprocess.run([str(REPO / "scripts/ensure-debian-packages"), "qemu-system-x86", "e2fsprogs"],
                   check=True, timeout=600)
    disk = tmp_path / "disk.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(image), "-L", "appliance-root", str(disk), "4G"],
                   check=True, timeout=600)
    put_test_units_on(str(disk), tmp_path)
    (kernel,) = image.glob("boot/vmlinuz-*")
    (initrd,) = image.glob("boot/initrd.img-*")
    boot_and_watch_the_kiosk(image, [
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", "root=/dev/vda rw console=ttyS0",
        "-drive", f"file={disk},format=raw,if=virtio"], tmp_path / "console.log")


# -- the bootable disk image (kiosk_image/disk) -----------------------------------------------

@pytest.fixture(scope="module")
def disk_image(image, tmp_path_factory) -> Path:
    """The root filesystem made into a partitioned disk with GRUB, where loop devices exist."""
    check = subprocess.run([str(REPO / "kiosk_image/disk"), "--check"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(check.stderr.strip())
    subprocess.run([str(REPO / "scripts/ensure-debian-packages"), "fdisk", "e2fsprogs"], check=True, timeout=600)
    disk = tmp_path_factory.mktemp("disk") / "appliance.img"
    started = time.monotonic()
    built = subprocess.run([str(REPO / "kiosk_image/disk"), str(image), str(disk)], capture_output=True,
                           text=True, timeout=900, env={**os.environ, "DISK_SIZE": "4G"})
    assert built.returncode == 0, built.stderr[-3000:]
    print(f"\ndisk image: {time.monotonic() - started:.0f} s to build, {disk.stat().st_size >> 20} MiB, "
          f"{disk.stat().st_blocks * 512 >> 20} MiB allocated")
    return disk


def partitions(disk: Path) -> list[dict]:
    table = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True, check=True)
    return json.loads(table.stdout)["partitiontable"]["partitions"]


def test_disk_image_has_a_bios_boot_and_a_root_partition_and_no_loop_device_left(disk_image):
    bios_boot, root = partitions(disk_image)
    assert bios_boot["type"] == "21686148-6449-6E6F-744E-656564454649"
    assert root["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    attached = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
                              capture_output=True, text=True, check=True)
    assert str(disk_image) not in attached.stdout


def test_disk_image_boots_from_its_own_boot_loader_into_the_kiosk(image, disk_image, tmp_path):
    subprocess.run([str(REPO / "scripts/ensure-debian-packages"), "qemu-system-x86"], check=True, timeout=600)
    disk = tmp_path / "appliance.img"     # the test units go on a copy, never into the built image
    subprocess.run(["cp", "--sparse=always", str(disk_image), str(disk)], check=True, timeout=300)
    root = partitions(disk)[1]
    put_test_units_on(f"{disk}?offset={root['start'] * 512}", tmp_path)
    started = time.monotonic()
    log = boot_and_watch_the_kiosk(image, ["-drive", f"file={disk},format=raw,if=virtio"], tmp_path / "console.log")
    print(f"\ndisk boot: kiosk up, frozen and restarted {time.monotonic() - started:.0f} s after power-on")
    # GRUB from the disk chose the kernel and its command line (no -kernel, no -append)
    assert re.search(rf"Command line: BOOT_IMAGE=/boot/vmlinuz-\S+ root=PARTUUID={root['uuid'].lower()} ", log)
    assert "login:" not in log           # console=ttyS0, and still no login prompt on the serial port
