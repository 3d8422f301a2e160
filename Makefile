# The two commands of the README: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# ffmpeg: native encoder baseline in benchmarks; systemd: systemd-analyze verify of the units;
# the rest are the shared libraries Qt needs to render offscreen.
DEBIAN_PACKAGES := ffmpeg systemd openssl libgl1 libegl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3
# What PySide6's xcb platform plugin links (readelf -d on plugins/platforms/libqxcb.so and
# lib/libQt6XcbQpa.so.6; libxcb-glx0 for its GLX integration), so the kiosk opens in a window on an
# X11 or XWayland desktop: `make demo` installs them when a display is present, `make test` always,
# with Xvfb for tests/test_demo_window.py.
XCB_PACKAGES := libxcb1 libx11-6 libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 \
	libxcb-keysyms1 libxcb-randr0 libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 \
	libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxcb-glx0
demo: DISPLAY_PACKAGES = $(if $(DISPLAY)$(WAYLAND_DISPLAY),$(XCB_PACKAGES))
test: DISPLAY_PACKAGES = xvfb $(XCB_PACKAGES)
# The disk-image builder's refusal and clean-up tests need its partitioning and ext4 tools.
# Orthanc (PACS and worklist) and dcmtk (wlmscpfs, storescp): the clinic's real servers in tests;
# chromium: the real browser the portal tests drive (through Playwright, never its own download).
test: TEST_TOOL_PACKAGES = fdisk e2fsprogs orthanc dcmtk chromium

.PHONY: demo test system-packages venv clean

system-packages:
	@scripts/ensure-debian-packages $(DEBIAN_PACKAGES) $(DISPLAY_PACKAGES) $(TEST_TOOL_PACKAGES)

# The venv holds exactly the locked releases, each checked against its recorded hash, then the
# project itself with no dependency resolution and no build-time download (the lock carries the
# build backend too). A changed lock or pyproject.toml reinstalls. docs/soup.md lists them all.
DEV_LOCK := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt

$(INSTALLED): pyproject.toml $(DEV_LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(INSTALLED)

# `make lock`: re-resolve both locks after pyproject.toml's dependencies change, keeping every pin
# that still fits; `make lock LOCK_ARGS=--upgrade` (or `--upgrade-package NAME`) takes newer
# releases. One resolution for Python 3.11 (the image's) and up, on every platform, one version per
# package; the runtime lock (the image's) is the dev lock's subset. uv runs from its own venv.
UV_VERSION := 0.13.9
LOCK_TOOL := .cache/lock-tool/uv-$(UV_VERSION)
LOCK_ARGS ?=
UV_COMPILE = $(LOCK_TOOL)/bin/uv pip compile --quiet --universal --fork-strategy fewest --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS)

$(LOCK_TOOL)/bin/uv:
	$(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/pip install --quiet uv==$(UV_VERSION)

.PHONY: lock
lock: $(LOCK_TOOL)/bin/uv
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(UV_COMPILE) pyproject.toml - --extra test --extra gateway -o $(DEV_LOCK)
	$(UV_COMPILE) pyproject.toml --constraint $(DEV_LOCK) -o $(RUNTIME_LOCK)

# MicroPython's WebAssembly port, on Node: tests/test_controller_micropython.py runs the controller
# firmware under it. Node.js and npm come from Debian only where the machine has none.
MICROPYTHON_WASM_VERSION := 1.27.0
MICROPYTHON_WASM := .cache/micropython/.installed-$(MICROPYTHON_WASM_VERSION)

$(MICROPYTHON_WASM):
	@command -v node >/dev/null && command -v npm >/dev/null || scripts/ensure-debian-packages nodejs npm
	npm install --prefix .cache/micropython --no-audit --no-fund --loglevel=error \
		@micropython/micropython-webassembly-pyscript@$(MICROPYTHON_WASM_VERSION)
	touch $@

demo: system-packages $(INSTALLED)
	$(VENV)/bin/appliance demo

test: system-packages $(INSTALLED) $(MICROPYTHON_WASM)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info

# `make image`: the kiosk's root filesystem, built as root with Debian's mmdebstrap from this
# machine's Debian mirror (docs/operations.md). IMAGE=DIR builds a directory instead of a tarball;
# RECIPIENT_KEYS, ALLIED_VISION_TL and IMAGE_EXTRA_PACKAGES are passed through to the build.
IMAGE ?= build/image/appliance-rootfs.tar
.PHONY: image
image: $(INSTALLED)
	@scripts/ensure-debian-packages mmdebstrap
	PYTHON=$(PY) kiosk_image/build $(IMAGE)

# `make disk-image`: a bootable raw disk image (GPT, GRUB for BIOS, ext4 root) where loop devices
# exist: the root filesystem as above plus the kernel and GRUB of kiosk_image/disk-packages, made
# into DISK_IMAGE by kiosk_image/disk, with a block map for bmaptool (docs/operations.md).
DISK_IMAGE ?= build/image/appliance.img
DISK_ROOTFS := build/image/disk-rootfs
.PHONY: disk-image
disk-image: $(INSTALLED)
	@kiosk_image/disk --check
	@scripts/ensure-debian-packages mmdebstrap fdisk e2fsprogs bmap-tools
	rm -rf $(DISK_ROOTFS)
	PYTHON=$(PY) IMAGE_EXTRA_PACKAGES="$$(kiosk_image/disk --packages)$${IMAGE_EXTRA_PACKAGES:+,$$IMAGE_EXTRA_PACKAGES}" \
		kiosk_image/build $(DISK_ROOTFS)
	kiosk_image/disk $(DISK_ROOTFS) $(DISK_IMAGE)
	bmaptool create -o $(DISK_IMAGE).bmap $(DISK_IMAGE)
