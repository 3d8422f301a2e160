"""The archive service: which recordings go, in what order, what "archived" is recorded as, and
the loop that keeps doing it (`appliance archive run|push`).

One pass: every sealed or interrupted recording without an archive copy, oldest first, is
verified against its signed manifest and this appliance's own device key (a recording whose
manifest fails, or was signed by another key, is reported and never uploaded), then its vault
and then its manifest are uploaded (appliance/archive/uploader.py: resumable, checksummed,
retained, HEAD-confirmed). Only when both are confirmed is it marked archived in the database
(its own connection, one audited transaction), and the audit head is anchored. After the
uploads, the disk guard's reclaim runs (appliance/archive/reclaim.py).

A refusal (bad credentials, unknown bucket, no Object Lock) ends the pass with one line and
nothing deleted: it holds for every recording until a person fixes it. A transient failure
(network, 5xx) ends the pass too; `run` waits with backoff and tries again, forever, without
a busy loop. The process lowers its own CPU and I/O priority so it never starves the recorder.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from appliance.archive import reclaim, s3
from appliance.archive.anchoring import Anchorer
from appliance.archive.pacing import Backoff
from appliance.archive.s3 import ArchiveError, ArchiveRefused, ArchiveUnavailable
from appliance.archive.uploader import SHA256_METADATA, Uploader
from appliance.archive.verify import stream_digests, verify_archive
from appliance.errors import BadInput, IntegrityError
from appliance.storage import disk_guard
from appliance.storage.database import ArchivedRecording, Store, make_private_dir
from appliance.storage.queries import Recording
from appliance.vault import manifest as vault_manifest
from appliance.vault.keys import load_device_key
from appliance.vault.signing import DevicePublicKey

log = logging.getLogger("appliance.archive")

IDLE_POLL_S = 15.0           # how often an idle service looks for newly sealed recordings
BACKOFF_S = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0)   # after a failed pass, then stays at the last
NICENESS = 10
UPLOAD_STATE_DIR = "archive-uploads"   # resume state under the data directory (0700)
PUSH_ATTEMPTS = 4                      # one `push` tries a transient failure this often
PUSH_BACKOFF_CAP_S = 10.0


@dataclass
class PassReport:
    archived: list[str] = field(default_factory=list)      # recording uids confirmed this pass
    problems: list[str] = field(default_factory=list)      # one line each
    reclaimed: list[str] = field(default_factory=list)
    refused: bool = False            # a refusal that holds for every recording (config, bucket)
    unavailable: bool = False        # the archive did not answer: try again later

    @property
    def ok(self) -> bool:
        return not self.problems


def object_key(device_key_id: str, recording: Recording) -> str:
    """The pinned layout: <device id>/<session uid>/<recording uid>.mp4.vault (no PHI)."""
    return f"{device_key_id}/{recording.session_uid}/{recording.path.name}"


def checked_manifest(recording: Recording, device_public: DevicePublicKey) -> vault_manifest.Verification:
    """The recording's manifest verification, pinned to this appliance's device key (a manifest
    carries the public key it was signed with, so its signatures alone say nothing of whose key
    that was). A file that cannot be read is a failed one."""
    try:
        return vault_manifest.verify(recording.path, device_public)
    except OSError as error:
        return vault_manifest.Verification(False, None, f"cannot read the vault: {error.strerror}")
    except BadInput as error:        # a header that is not a vault's
        return vault_manifest.Verification(False, None, str(error))


def archive_pass(store, archive_one: Callable[[Recording, vault_manifest.Verification], None],
                 after_archived: Callable[[], str | None], *, device_public: DevicePublicKey) -> PassReport:
    """Archives every unarchived recording once, oldest first, each only when its manifest
    verifies with `device_public`. `archive_one` uploads and marks one recording (raises
    ArchiveRefused / ArchiveUnavailable, which end the pass, or IntegrityError: this recording
    changed and is not marked); `after_archived` anchors the audit head and returns
    what went wrong, if anything."""
    report = PassReport()
    for recording in store.unarchived_recordings():
        verification = checked_manifest(recording, device_public)
        if not verification.ok:
            report.problems.append(f"recording {recording.uid}: not archived: its manifest does not verify "
                                   f"({verification.problem})")
            continue
        try:
            archive_one(recording, verification)
        except IntegrityError as error:       # this recording's bytes changed: the others may go
            report.problems.append(f"recording {recording.uid}: not marked archived: {error}")
            continue
        except ArchiveRefused as error:
            report.problems.append(f"recording {recording.uid}: {error}")
            report.refused = True
            break
        except ArchiveUnavailable as error:
            report.problems.append(f"recording {recording.uid}: {error}")
            report.unavailable = True
            break
        report.archived.append(recording.uid)
        problem = after_archived()
        if problem:
            report.problems.append(problem)
    return report


def lower_priority() -> None:
    """The idle CPU scheduling class, nice 10 and the idle I/O class, unless the unit already did
    it (or forbids changing it). Called before any thread starts, so every thread inherits it.
    SCHED_IDLE runs only on CPU time nothing else wants: nice 10 alone still cost a loaded 2-core
    recorder frames (docs/archive.md, Benchmark). Any user may choose it."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError) as error:   # AttributeError: not Linux
        log.info("cannot use the idle CPU scheduling class: %s", error)
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < NICENESS:
            os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
    except OSError as error:
        log.info("cannot lower the CPU priority: %s", error.strerror)
    ionice = shutil.which("ionice")
    if ionice:
        subprocess.run([ionice, "-c", "3", "-p", str(os.getpid())], check=False, capture_output=True)


def run_forever(one_pass: Callable[[], PassReport], stop: threading.Event, *,
                idle_poll_s: float = IDLE_POLL_S, backoff_s: tuple[float, ...] = BACKOFF_S) -> None:
    """Passes until `stop` is set. After a pass the archive refused or did not answer, it waits
    the next backoff step (reset by the next pass that reached it); otherwise `idle_poll_s`.
    Waiting is on `stop`, so SIGTERM ends it at once and nothing spins. A problem is logged
    once, not at every pass."""
    failures, logged = 0, set()
    while not stop.is_set():
        try:
            report = one_pass()
        except (ArchiveRefused, ArchiveUnavailable) as error:
            report = PassReport(problems=[str(error)], unavailable=True)
        for line in report.problems:
            if line not in logged:
                log.warning("%s", line)
        logged = set(report.problems)
        for uid in report.archived:
            log.info("recording %s archived", uid)
        if report.refused or report.unavailable:
            wait = backoff_s[min(failures, len(backoff_s) - 1)]
            failures += 1
        else:
            failures, wait = 0, idle_poll_s
        stop.wait(wait)


class ArchiveService:
    """The archive process's parts: its own database connection, the S3 client, the uploader.
    `push` gives up on a transient failure after a few tries (the pass reports it); `run`
    passes `stop`, so the uploader retries for ever but a SIGTERM ends the wait at once."""

    def __init__(self, settings, *, stop: threading.Event | None = None, clock: Callable[[], float] = time.time,
                 free_bytes: Callable[[Path], int] = disk_guard.free_bytes):
        self.settings, self.archive = settings, settings.archive
        self.clock, self._free_bytes = clock, free_bytes
        self.client = s3.connect(self.archive)            # ArchiveRefused: no or unreadable credentials
        self.store = Store(settings.data.dir, clock=clock)
        state_dir = settings.data.dir / UPLOAD_STATE_DIR
        make_private_dir(state_dir)
        self.uploader = Uploader(self.client, self.archive, state_dir, backoff=_backoff(stop))
        device_key = load_device_key(settings.device_key_path)
        self.device_public = device_key.public_key()
        self.anchorer = Anchorer(self.uploader, self.store, device_key, clock=clock)

    def __enter__(self) -> ArchiveService:
        return self

    def __exit__(self, *_) -> None:
        self.store.close()

    def one_pass(self) -> PassReport:
        """The bucket checked, every waiting recording archived, then space reclaimed if needed.
        A refused or unreachable archive ends the pass before anything is deleted."""
        try:
            s3.check_bucket(self.client, self.archive)
        except (ArchiveRefused, ArchiveUnavailable) as error:
            waiting = self.store.archive_backlog().count
            return PassReport(problems=[f"{error} ({waiting} recording(s) waiting)"],
                              refused=isinstance(error, ArchiveRefused),
                              unavailable=isinstance(error, ArchiveUnavailable))
        report = archive_pass(self.store, self._archive_one, lambda: self._anchor(self.anchorer.anchor_now),
                              device_public=self.device_public)
        if not (report.refused or report.unavailable):
            # Hourly, or again when an anchor after an archived recording failed in an earlier
            # pass; not again in a pass that just tried (and reported) it.
            problem = None if report.archived else self._anchor(self.anchorer.anchor_if_due)
            report.problems += [problem] if problem else []
            report.reclaimed = self._reclaim()
        return report

    @staticmethod
    def _anchor(anchor: Callable[[], object]) -> str | None:
        """Anchors the audit head (appliance/archive/anchoring.py); the problem in one line."""
        try:
            anchor()
        except (ArchiveError, IntegrityError) as error:
            return f"audit anchor: {error}"
        return None

    def _archive_one(self, recording: Recording, verification: vault_manifest.Verification) -> None:
        key = object_key(verification.device_key_id, recording)
        metadata = {"recording-state": verification.state}
        vault = self.uploader.upload_file(recording.path, key, metadata)
        sidecar = self.uploader.upload_file(vault_manifest.manifest_path(recording.path), key + ".manifest", metadata)
        self._uploaded_as_signed(recording.path, vault.sha256)
        self.store.mark_archived(ArchivedRecording(
            recording.uid, vault.key, vault.version_id, sidecar.key, sidecar.version_id, vault.size, vault.sha256,
            vault.retain_until.timestamp() if vault.retain_until else None, self.clock()))

    def _uploaded_as_signed(self, vault_path: Path, uploaded_sha256: str) -> None:
        """Raises IntegrityError unless the local vault, read once, is both what its manifest
        signs (by this device) and what the archive confirmed (whole-file SHA-256). The manifest
        check before the upload and the uploader's hash are separate reads: bytes changed in
        between would otherwise be marked archived as good. Paced by the uploader's CPU budget."""
        signed, signer, problem = vault_manifest.read_manifest(vault_path)
        if signed is not None and signer.key_id != self.device_public.key_id:
            problem = "manifest was signed by a different device key"
        if problem is None:
            try:
                with open(vault_path, "rb") as file:
                    header, digest, whole = stream_digests(lambda size: self._budgeted(file.read, size))
            except OSError as error:
                raise IntegrityError(f"cannot read the vault again: {error.strerror}") from None
            except BadInput as error:          # a header that is no longer a vault's
                raise IntegrityError(str(error)) from None
            problem = vault_manifest.header_problem(signed, header) or \
                vault_manifest.content_problem(signed, header, digest)
            if problem is None and whole != uploaded_sha256:
                problem = "the vault changed while it was uploaded: the archived bytes are not the signed ones"
        if problem is not None:
            raise IntegrityError(problem)

    def _budgeted(self, read: Callable[[int], bytes], size: int) -> bytes:
        self.uploader.budget.check()
        return read(size)

    def _reclaim(self) -> list[str]:
        storage = self.settings.storage
        needed = reclaim.bytes_needed(free_bytes=self._free_bytes(self.settings.data.dir),
                                      bitrate_bps=self.settings.recording.bitrate_estimate_bps,
                                      reserve_bytes=storage.reserve_mb * 1_000_000,
                                      max_session_s=storage.max_session_minutes * 60)
        return reclaim.reclaim(self.store, needed=needed, now=self.clock(),
                               keep_local_days=self.archive.keep_local_days, still_archived=self.still_archived)

    def still_archived(self, copy: ArchivedRecording) -> str | None:
        """A fresh HEAD of both objects at their recorded versions: None when the vault has the
        recorded size and SHA-256 and both are retained past now, else what is wrong."""
        for key, version in ((copy.vault_key, copy.vault_version), (copy.manifest_key, copy.manifest_version)):
            try:
                head = self.client.head_object(Bucket=self.archive.bucket, Key=key,
                                               **({"VersionId": version} if version else {}))
            except (ClientError, BotoCoreError) as error:
                return str(s3.classify(error, f"check {key}"))
            until = head.get("ObjectLockRetainUntilDate")
            if copy.retain_until is not None and (until is None or until.timestamp() <= self.clock()):
                return f"{key} is no longer retained"
            if key == copy.vault_key and (head["ContentLength"] != copy.bytes
                                          or head.get("Metadata", {}).get(SHA256_METADATA) != copy.sha256):
                return f"{key} differs from the copy recorded as archived"
        return None

    def verify(self) -> tuple[list[str], int]:
        """(problems, how many recordings and objects were checked): appliance/archive/verify.py."""
        try:
            check = verify_archive(self.store, self.client, self.archive.bucket,
                                   device_key_id=self.device_public.key_id)
        except (ClientError, BotoCoreError) as error:
            raise s3.classify(error, "verify") from None
        return list(check.problems), check.recordings + check.objects


def _backoff(stop: threading.Event | None) -> Backoff:
    if stop is None:
        return Backoff(max_attempts=PUSH_ATTEMPTS, cap=PUSH_BACKOFF_CAP_S)

    def wait(seconds: float) -> None:
        if stop.wait(seconds):
            raise ArchiveUnavailable("archive: stopping (the upload resumes at the next start)")
    return Backoff(sleep=wait)
