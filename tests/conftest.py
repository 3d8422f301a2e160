"""Fixtures shared by every test module. Keep module-specific fixtures in their own files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Declared here, not imported into each module: a module's own import of a session fixture makes
# a fixture of its own, so every such module started (and kept running) another SeaweedFS.
from tests.servers.seaweedfs import own_seaweedfs, seaweedfs  # noqa: F401 (fixtures for every module)

# Qt renders offscreen in tests: there is no display here, and the kiosk must not need one to be tested.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_appliance(*args: str, input: bytes | None = None, timeout: float = 120, cwd: Path | None = None,
                  env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs the installed CLI in a subprocess, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        input=input, capture_output=True, timeout=timeout, cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def appliance_cli():
    return run_appliance
