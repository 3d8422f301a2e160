"""The work behind the service screen's buttons, without Qt: recent log lines kept in memory,
the encryption self-test, the disk write speed, the verified export of the audit trail and logs,
and the state diagram as text. Each runs on a worker thread (or is cheap), never blocking the
GUI thread."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric import ec

from appliance import vault
from appliance.atomic import write_atomically
from appliance.errors import IntegrityError
from appliance.machine import mermaid_diagram
from appliance.storage import audit
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.ui.service_access import SERVICE_ROLE

WRITE_TEST_BYTES = 64 * 1024 * 1024
SELF_TEST_BYTES = 300 * 1024
RECENT_LOG_LINES = 500
AUDIT_WAIT_S = 30.0          # an export waits this long for its audit entry behind a sealing commit


class RecentLogs(logging.Handler):
    """The last log lines in memory, for the service screen and its export (no PHI is logged)."""

    def __init__(self, capacity: int = RECENT_LOG_LINES) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def encryption_self_test(clock: Callable[[], float] = time.perf_counter) -> str:
    """Encrypts random bytes to an ephemeral key in memory, decrypts them back and checks that a
    flipped bit is caught. Raises IntegrityError on any mismatch."""
    started = clock()
    identity = ec.generate_private_key(ec.SECP256R1())
    plaintext = os.urandom(SELF_TEST_BYTES)
    sealed_bytes = io.BytesIO()
    writer = vault.encrypt(sealed_bytes, [identity.public_key()])
    writer.write(plaintext)
    writer.close()
    if vault.open_reader(io.BytesIO(sealed_bytes.getvalue()), identity).read() != plaintext:
        raise IntegrityError("encryption self-test: decrypted bytes differ")
    tampered = bytearray(sealed_bytes.getvalue())
    tampered[len(tampered) // 2] ^= 0x01
    try:
        vault.open_reader(io.BytesIO(bytes(tampered)), identity).read()
    except IntegrityError:
        elapsed_ms = (clock() - started) * 1000
        return f"Encryption self-test passed: round trip and tamper detection ({elapsed_ms:.0f} ms)"
    raise IntegrityError("encryption self-test: a modified vault was not detected")


def write_speed(directory: Path, size: int = WRITE_TEST_BYTES) -> str:
    """Sequential write with fsync, like a recording; the test file is removed afterwards."""
    block = os.urandom(1024 * 1024)
    path = directory / f".write-test-{os.getpid()}"
    started = time.perf_counter()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(descriptor, block[: min(len(block), size - written)])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
        path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return f"Disk write speed: {written / seconds / 1e6:.0f} MB/s ({written // (1024 * 1024)} MiB with fsync)"


def export_diagnostics(reader: StoreReader, database: DatabaseWriter, logs: RecentLogs, destination: Path,
                       actor: str = SERVICE_ROLE) -> str:
    """Writes the audit trail (JSON lines) and the recent log lines to `destination`, each
    atomically (appliance/atomic.py), then reads them back and compares SHA-256 before saying so.
    Runs on a worker thread: it reads the records and waits for its own audit entry."""
    entries = reader.audit_entries()
    chain = audit.first_broken_link(entries)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    audit_text = "".join(json.dumps({"seq": e.seq, "at": e.at, "event": e.event, "actor": e.actor,
                                     "details": e.details, "prev_hash": e.prev_hash, "hash": e.hash},
                                    sort_keys=True) + "\n" for e in entries)
    files = {f"audit-{stamp}.jsonl": audit_text.encode(), f"kiosk-log-{stamp}.txt": ("\n".join(logs.lines) + "\n").encode()}
    destination.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = destination / name
        write_atomically(target, content, overwrite=True)
        if hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(content).digest():
            raise IntegrityError(f"export of {name} to {destination} did not verify")
    database.audit("export", actor, what="audit trail and logs", entries=len(entries),
                   audit_chain_ok=chain.ok).result(AUDIT_WAIT_S)
    verdict = "audit chain intact" if chain.ok else "AUDIT CHAIN BROKEN — report this"
    return f"Exported and verified {len(files)} files to {destination} ({len(entries)} audit entries, {verdict})"


def diagram_text(current: str) -> str:
    """The machine's own transitions, one per line, the current state marked."""
    lines = []
    for line in mermaid_diagram().splitlines():
        line = line.strip()
        if "-->" not in line or line.startswith("[*]"):
            continue
        source = line.split()[0]
        marker = "▶ " if source.lower() == current.lower() else "  "
        lines.append(marker + line.replace("-->", "→"))
    return "\n".join(lines)
