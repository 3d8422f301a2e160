"""One gateway pass, and the service loop around it.

For each recording a source holds that is not settled yet (never seen, failed and due again, or
refused for a signer not enrolled while other keys were enrolled than now): verify it
(verify.py), refuse it if it is not genuine or cannot be filed; skip the send when the same
recording was already delivered from another location; else build its DICOM instances
(dicom_object.py: decrypt, transcode, wrap) and deliver them (pacs.py). The state database
records the outcome only after the PACS confirmed, so a crash in between re-sends (idempotent:
the SOP Instance UIDs derive from the recording) and never reports a delivery that did not happen.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from appliance.errors import ApplianceError
from appliance.gateway import pacs
from appliance.gateway.settings import GatewayConfig
from appliance.gateway.sources import Source, SourceUnavailable
from appliance.gateway.state import GatewayState
from appliance.gateway.verify import enrolled_devices, enrolment_fingerprint, filing_problem, verify_recording
from appliance.storage.database import make_private_dir

log = logging.getLogger("appliance.gateway")


@dataclass(frozen=True)
class Outcome:
    location: str
    state: str          # delivered | failed | refused
    line: str           # one line for the operator (no patient data: locations are opaque uids)


class Gateway:
    def __init__(self, settings: GatewayConfig, identity, state: GatewayState, sources: Iterable[Source],
                 build_instances: Callable | None = None):
        self.settings = settings
        self.identity = identity
        self.state = state
        self.sources = list(sources)
        self.build_instances = build_instances or self._build_instances

    def _build_instances(self, vault_path, signed, identity, transfer):
        from appliance.gateway.dicom_object import build_instances   # PyAV and pydicom only when sending
        return build_instances(vault_path, signed, identity, transfer, scratch_dir=self._scratch_dir(),
                               region=self.settings.gateway.anatomic_region)

    def _scratch_dir(self):
        """The gateway's own (0700): not the shared temp dir, whose disk and neighbours we do not choose."""
        make_private_dir(self.settings.scratch_dir)
        return self.settings.scratch_dir

    def sync(self, *, ignore_backoff: bool = True, report: Callable[[Outcome], None] = lambda outcome: None
             ) -> list[Outcome]:
        """One pass over every source; the outcome of each recording not delivered before, each
        also handed to `report` as soon as it is known (a pass can take minutes per recording)."""
        devices = enrolled_devices(self.settings.gateway.devices)
        enrolment = enrolment_fingerprint(devices)
        outcomes: list[Outcome] = []

        def note(outcome: Outcome) -> None:
            outcomes.append(outcome)
            report(outcome)

        for source in self.sources:
            try:
                for location in source.locations():
                    if self.state.due(location, ignore_backoff=ignore_backoff, enrolment=enrolment):
                        with source.fetch(location) as path:
                            note(self._handle(location, path, devices, enrolment))
                    elif (known := self.state.delivery(location)).state == "refused":
                        note(Outcome(location, "refused", f"{location}: refused earlier: {known.reason}"))
            except SourceUnavailable as error:   # the other sources still get their pass
                note(Outcome(source.name, "failed", f"{source.name}: not read this pass ({error})"))
        return outcomes

    def _handle(self, location: str, path, devices: list, enrolment: str) -> Outcome:
        verdict = verify_recording(path, devices)
        problem = verdict.problem or filing_problem(verdict.signed)
        if problem:
            self.state.refuse(location, problem, verdict.recording_id,
                              enrolment=enrolment if verdict.awaits_enrolment else None)
            return Outcome(location, "refused", f"{location}: refused, nothing sent: {problem}")
        earlier = self.state.delivered_elsewhere(verdict.recording_id)
        if earlier is not None:
            self.state.deliver(location, verdict.recording_id, earlier.instances)
            return Outcome(location, "delivered", f"{location}: already delivered from {earlier.location}")
        try:
            instances = self.build_instances(path, verdict.signed, self.identity, self.settings.pacs.transfer)
            uids = pacs.deliver(instances, self.settings.pacs, scratch_dir=self._scratch_dir())
        except Exception as error:   # noqa: BLE001 -- whatever went wrong, this recording waits for a retry
            gateway = self.settings.gateway
            failed = self.state.fail(location, verdict.recording_id, _one_line(error),
                                     retry_s=gateway.retry_s, retry_max_s=gateway.retry_max_s)
            wait = failed.next_attempt_at - failed.updated_at
            return Outcome(location, "failed", f"{location}: not delivered (attempt {failed.attempts}, "
                                               f"next in {wait:.0f} s): {failed.reason}")
        self.state.deliver(location, verdict.recording_id, uids)
        marked = " (interrupted recording, marked as such)" if verdict.interrupted else ""
        return Outcome(location, "delivered", f"{location}: delivered, {len(uids)} instance(s) "
                                              f"confirmed by the PACS{marked}")

    def run(self, stop: threading.Event) -> None:
        """Passes every `refresh_s` until `stop` is set; failed deliveries wait for their retry time."""
        while not stop.is_set():
            try:
                self.sync(ignore_backoff=False, report=lambda outcome: (
                    log.info if outcome.state == "delivered" else log.warning)(outcome.line))
            except ApplianceError as error:   # e.g. an unreadable devices directory: say so, try again
                log.error("gateway pass failed: %s", error)
            stop.wait(self.settings.gateway.refresh_s)


def _one_line(error: BaseException) -> str:
    """Our own errors say what happened; anything else (a decoder's, a bug) is named by its type."""
    text = str(error) if isinstance(error, ApplianceError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())
