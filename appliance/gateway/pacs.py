"""Sending instances to PACS and getting its word that it keeps them (pynetdicom).

One association per recording proposes exactly one transfer syntax for Video Photographic
Image Storage (the one the instances are encoded in: no conversion, the chunked sender cannot
convert), plus Storage Commitment Push Model and Study Root C-FIND for the confirmation.
Each instance is encoded once into a scratch file encrypted with a throwaway key
(scratch.py: only ciphertext on disk, never named) and sent from it PDU by PDU, the way
STORE_SEND_CHUNKED_DATASET sends a file: memory stays bounded whatever the instance's size.
Then the PACS confirms, and only then are the instances delivered:

- storage commitment (N-ACTION, result by N-EVENT-REPORT, which the PACS usually sends on an
  association of its own to `commitment_port`) when the PACS accepts it;
- else (or with `confirm = "find"`) a C-FIND of each SOP Instance UID when the PACS accepts that;
- else only when `confirm = "store-status"` says the C-STORE status is all this PACS offers.

Every failure is a DeliveryFailed with one line; the caller retries later. SOP Instance UIDs are
derived from the recording (dicom_object.py), so a repeated send replaces, never duplicates.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

from pydicom import Dataset, dcmwrite
from pydicom.filereader import read_dataset, read_preamble
from pydicom.uid import generate_uid
from pynetdicom import AE, _config, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.sop_class import (StorageCommitmentPushModel, StudyRootQueryRetrieveInformationModelFind,
                                  VideoPhotographicImageStorage)
from pynetdicom.status import code_to_category

from appliance.errors import ApplianceError
from appliance.gateway.scratch import EncryptedScratch
from appliance.gateway.settings import PacsSettings

_config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False   # they carry patient data
logging.getLogger("pynetdicom").setLevel(logging.WARNING)   # its debug lines dump whole datasets

TRANSFER_SYNTAXES = {"h264": "1.2.840.10008.1.2.4.102",   # MPEG-4 AVC/H.264 High Profile / Level 4.1
                     "hevc": "1.2.840.10008.1.2.4.107"}   # HEVC/H.265 Main Profile / Level 5.1
COMMITMENT_REQUEST = 1          # N-ACTION Action Type ID: Request Storage Commitment
COMMITMENT_ALL_DONE = 1         # N-EVENT-REPORT Event Type ID: storage commitment request successful
COMMITMENT_FAILURES = 2         # ... complete, failures exist


class DeliveryFailed(ApplianceError):
    """The PACS is down, refused, or did not confirm: nothing counts as delivered."""

    exit_code = 1


@dataclass(frozen=True)
class Stored:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str


def deliver(instances: Iterable[Dataset], settings: PacsSettings, *, scratch_dir=None) -> tuple[str, ...]:
    """Sends every instance and returns their SOP Instance UIDs once the PACS confirmed them;
    each is encoded into an encrypted scratch file in `scratch_dir`.
    All instances are built and encoded first (transcoding takes minutes for a long clip) and
    only then is the association opened: a PACS drops an association that stays idle."""
    with ExitStack() as scratches:
        encoded = [_encode(dataset, settings, scratches, scratch_dir) for dataset in instances]
        if not encoded:
            raise DeliveryFailed("the recording produced no DICOM instance")
        stored = [item for item, _ in encoded]
        reports = _CommitmentReports()
        with _association(settings, reports) as association:
            for item, data in encoded:
                _store(association, item, data, settings)
            accepted = {context.abstract_syntax for context in association.accepted_contexts}
            commitment = settings.confirm == "auto" and StorageCommitmentPushModel in accepted
            query = settings.confirm == "find" or (settings.confirm == "auto" and not commitment)
            if commitment:
                _commit(association, stored, reports, settings)
            elif query and StudyRootQueryRetrieveInformationModelFind in accepted:
                _find_each(association, stored)
            elif settings.confirm != "store-status":
                raise DeliveryFailed("the PACS offers neither storage commitment nor C-FIND to confirm what it "
                                     "stored; set pacs.confirm = \"store-status\" to trust C-STORE alone")
    return tuple(item.sop_instance_uid for item in stored)


def _encode(dataset: Dataset, settings: PacsSettings, scratches: ExitStack,
            scratch_dir) -> tuple[Stored, "_EncodedDataSet"]:
    if dataset.file_meta.TransferSyntaxUID != TRANSFER_SYNTAXES[settings.transfer]:
        raise DeliveryFailed(f"an instance is encoded in {dataset.file_meta.TransferSyntaxUID}, "
                             f"not the {settings.transfer} the settings ask for")
    scratch = scratches.enter_context(EncryptedScratch(scratch_dir))
    dcmwrite(scratch, dataset, enforce_file_format=True)
    item = Stored(str(dataset.SOPClassUID), str(dataset.SOPInstanceUID), str(dataset.StudyInstanceUID),
                  str(dataset.SeriesInstanceUID))
    return item, _EncodedDataSet(scratch)


@contextmanager
def _association(settings: PacsSettings, reports: "_CommitmentReports") -> Iterator:
    ae = AE(ae_title=settings.calling_ae)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.add_requested_context(VideoPhotographicImageStorage, [TRANSFER_SYNTAXES[settings.transfer]])
    ae.add_requested_context(StorageCommitmentPushModel)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    # pynetdicom 3.0.4 reports a rejection as an abort when the PACS hangs up right after its
    # A-ASSOCIATE-RJ (Orthanc, ~5 % under load): the PDU itself decides.
    rejections = []
    on_pdu = (evt.EVT_PDU_RECV, lambda event: rejections.append(event.pdu)
              if isinstance(event.pdu, A_ASSOCIATE_RJ) else None)
    where = f"{settings.called_ae}@{settings.host}:{settings.port}"
    try:
        association = ae.associate(settings.host, settings.port, ae_title=settings.called_ae,
                                   evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle), on_pdu])
    except OSError as error:   # the host name does not resolve
        raise DeliveryFailed(f"cannot reach the PACS {where}: {error.strerror or error}") from None
    if rejections:
        raise DeliveryFailed(f"the PACS {where} rejected the association ({rejections[0].reason_str}; "
                             "check the AE titles it knows)")
    if not association.is_established:
        raise DeliveryFailed(f"the PACS {where} does not answer")
    try:
        yield association
    finally:
        if association.is_established:
            association.release()
        ae.shutdown()


def _store(association, item: Stored, data: "_EncodedDataSet", settings: PacsSettings) -> None:
    syntax = TRANSFER_SYNTAXES[settings.transfer]
    context = next((c for c in association.accepted_contexts
                    if c.abstract_syntax == item.sop_class_uid and c.transfer_syntax[0] == syntax), None)
    if context is None:
        raise DeliveryFailed(f"the PACS does not accept Video Photographic Image Storage in "
                             f"{settings.transfer} ({syntax})")
    code = _send_encoded(association, context.context_id, item, data)
    if not association.is_established:
        raise DeliveryFailed("the PACS aborted the association while receiving an instance")
    if code is None:
        raise DeliveryFailed("the PACS sent no C-STORE answer in time")
    if code_to_category(code) not in ("Success", "Warning"):
        raise DeliveryFailed(f"the PACS refused an instance: C-STORE status 0x{code:04X}")


class _EncodedDataSet(io.BytesIO):
    """An encoded data set (the DICOM file after its meta group) in the encrypted scratch file,
    as pynetdicom's DIMSE encoder reads one: getvalue(), len() and slices, read on demand. The
    encoder puts every PDU into the association's unbounded send queue at once, so a slice
    waits while that queue holds QUEUED_PDUS: only those are ever in memory (without the wait,
    an 800 MiB instance took 424 MiB of RSS). A BytesIO by type only (the primitive checks that)."""

    QUEUED_PDUS = 64

    def __init__(self, scratch: EncryptedScratch):
        super().__init__()
        self._scratch = scratch
        self.association = None     # set by _send_encoded: whose send queue to wait on
        scratch.seek(0)
        read_preamble(scratch, False)
        read_dataset(scratch, is_implicit_VR=False, is_little_endian=True,
                     stop_when=lambda tag, vr, length: tag.group != 2)
        self._start = scratch.tell()

    def getvalue(self) -> "_EncodedDataSet":   # type: ignore[override]
        return self

    def __len__(self) -> int:
        return self._scratch.size - self._start

    def __getitem__(self, window: slice) -> bytes:
        queue = self.association.dul.to_provider_queue
        while queue.qsize() > self.QUEUED_PDUS:   # the network is slower than the scratch file
            if not self.association.is_established:
                raise DeliveryFailed("the PACS aborted the association while receiving an instance")
            time.sleep(0.001)
        start, stop, _ = window.indices(len(self))
        self._scratch.seek(self._start + start)
        return self._scratch.read(max(stop - start, 0))

    def __radd__(self, prefix: bytes) -> bytes:   # a peer without a PDU limit takes it in one piece
        return prefix + self[0:len(self)]


def _send_encoded(association, context_id: int, item: Stored, encoded: _EncodedDataSet) -> int | None:
    """Association.send_c_store's own steps (pynetdicom 3.0.4, pinned) for a data set that is
    already encoded: its public API reads a pre-encoded data set only from a named file, and a
    named file of this one would be plaintext on a disk. Returns the status, None without one."""
    request = C_STORE()
    request.MessageID, request.Priority = 1, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = item.sop_class_uid, item.sop_instance_uid
    request.DataSet = encoded
    encoded.association = association
    association._reactor_checkpoint.clear()      # as send_c_store: the reactor must not take the answer
    while not association._is_paused:
        time.sleep(0.0001)
    try:
        association.dimse.send_msg(request, context_id)
        _, response = association.dimse.get_msg(block=True)
    finally:
        association._reactor_checkpoint.set()
    if response is None:
        association._handle_no_response()
        return None
    return getattr(association._check_received_status(response), "Status", None)


class _CommitmentReports:
    """N-EVENT-REPORTs arriving on any association, by Transaction UID."""

    def __init__(self):
        self._lock = threading.Condition()
        self._reports: dict[str, tuple[int, Dataset]] = {}

    def handle(self, event) -> tuple[int, None]:
        information = event.event_information
        with self._lock:
            self._reports[str(information.get("TransactionUID", ""))] = (event.request.EventTypeID, information)
            self._lock.notify_all()
        return 0x0000, None

    def wait(self, transaction_uid: str, timeout: float) -> tuple[int, Dataset] | None:
        with self._lock:
            self._lock.wait_for(lambda: transaction_uid in self._reports, timeout)
            return self._reports.get(transaction_uid)


def _commit(association, stored: list[Stored], reports: _CommitmentReports, settings: PacsSettings) -> None:
    transaction_uid = generate_uid()
    request = Dataset()
    request.TransactionUID = transaction_uid
    request.ReferencedSOPSequence = [_reference(item) for item in stored]
    with _report_listener(settings, reports):
        status, _ = association.send_n_action(request, COMMITMENT_REQUEST, StorageCommitmentPushModel,
                                              "1.2.840.10008.1.20.1.1")
        code = getattr(status, "Status", None)
        if code is None or code_to_category(code) not in ("Success", "Warning"):
            raise DeliveryFailed("the PACS refused the storage commitment request"
                                 + (f" (status 0x{code:04X})" if code is not None else ""))
        report = reports.wait(transaction_uid, settings.commitment_timeout_s)
    if report is None:
        raise DeliveryFailed(f"no storage commitment result within {settings.commitment_timeout_s:.0f} s")
    event_type, information = report
    committed = {str(item.ReferencedSOPInstanceUID) for item in information.get("ReferencedSOPSequence", [])}
    missing = [item for item in stored if item.sop_instance_uid not in committed]
    if event_type != COMMITMENT_ALL_DONE or missing:
        failed = information.get("FailedSOPSequence", [])
        reasons = sorted({f"0x{int(item.get('FailureReason', 0)):04X}" for item in failed})
        raise DeliveryFailed(f"the PACS did not commit {max(len(missing), len(failed))} of {len(stored)} "
                             f"instance(s)" + (f" (failure reason {', '.join(reasons)})" if reasons else ""))


@contextmanager
def _report_listener(settings: PacsSettings, reports: _CommitmentReports) -> Iterator[None]:
    ae = AE(ae_title=settings.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)
    try:
        server = ae.start_server((settings.commitment_bind, settings.commitment_port), block=False,
                                 evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handle)])
    except OSError as error:
        raise DeliveryFailed(f"cannot listen for the storage commitment result on port "
                             f"{settings.commitment_port}: {error.strerror}") from None
    try:
        yield
    finally:
        server.shutdown()


def _reference(item: Stored) -> Dataset:
    reference = Dataset()
    reference.ReferencedSOPClassUID = item.sop_class_uid
    reference.ReferencedSOPInstanceUID = item.sop_instance_uid
    return reference


def _find_each(association, stored: list[Stored]) -> None:
    for item in stored:
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID, query.SeriesInstanceUID = item.study_uid, item.series_uid
        query.SOPInstanceUID = item.sop_instance_uid
        found = False
        for status, identifier in association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = getattr(status, "Status", None)
            if code is None or code_to_category(code) not in ("Pending", "Success", "Warning"):
                raise DeliveryFailed("the PACS did not answer the query for what it stored"
                                     + (f" (C-FIND status 0x{code:04X})" if code is not None else ""))
            found |= identifier is not None and str(identifier.get("SOPInstanceUID", "")) == item.sop_instance_uid
        if not found:
            raise DeliveryFailed("the PACS acknowledged an instance its query does not find")
