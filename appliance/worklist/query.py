"""One Modality Worklist query (C-FIND, Modality Worklist Information Model - FIND): the steps
scheduled today for our station AE and modality.

The dataset <-> entry conversions are pure; `query_worklist` is the network edge and never
raises for what a RIS or a network can do: it answers with a status and one line. Neither the
line nor anything logged here carries patient data.
"""

from __future__ import annotations

import datetime
import logging
import re
import warnings

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
# Loaded with this module (the service's, before it serves: its first answer does not wait for
# the import); the kiosk imports only the client and never loads the network stack.
from pynetdicom import AE, evt
from pynetdicom.pdu import A_ASSOCIATE_RJ
from pynetdicom.sop_class import ModalityWorklistInformationFind

from appliance.worklist.entries import SEXES, WorklistEntry
from appliance.worklist.protocol import WorklistAnswer
from appliance.worklist.settings import WorklistSettings

# pynetdicom logs identifiers (names) at debug level, pydicom logs invalid values it reads: the
# service's journal is on the appliance's disk, so their loggers say nothing below CRITICAL.
for _library in ("pynetdicom", "pydicom"):
    logging.getLogger(_library).setLevel(logging.CRITICAL)

PENDING = (0xFF00, 0xFF01)
SUCCESS = 0x0000
DA = re.compile(r"\A\d{8}\Z")
TM = re.compile(r"\A(\d{2})(\d{2})?(\d{2})?(\.\d*)?\Z")   # HH, HHMM, HHMMSS, with a fraction


def build_query(settings: WorklistSettings, today: datetime.date) -> Dataset:
    """The C-FIND identifier: match station AE, modality and today's date; return the rest."""
    step = Dataset()
    step.ScheduledStationAETitle = settings.station_ae
    step.Modality = settings.modality
    step.ScheduledProcedureStepStartDate = today.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = ""
    step.ScheduledProcedureStepID = ""
    step.ScheduledProcedureStepDescription = ""

    query = Dataset()
    query.SpecificCharacterSet = ""   # asked for, so the answer says how its text is encoded
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                    "StudyInstanceUID", "RequestedProcedureDescription", "RequestedProcedureID"):
        setattr(query, keyword, "")
    query.ScheduledProcedureStepSequence = [step]
    return query


def entry_from_dataset(answer: Dataset) -> WorklistEntry:
    """An entry from one C-FIND answer, its text decoded by its Specific Character Set. Values
    a RIS filled wrongly (a date that is no date, an unknown sex) become empty rather than
    costing the nurse the whole entry; the name and IDs are kept as the RIS sent them."""
    with warnings.catch_warnings():   # pydicom's warnings quote the values: no patient data in logs
        warnings.simplefilter("ignore")
        steps = answer.get("ScheduledProcedureStepSequence") or [Dataset()]
        step = steps[0]
        sex = _text(answer, "PatientSex").upper()
        birth_date = _text(answer, "PatientBirthDate")
        return WorklistEntry(
            patient_name=_text(answer, "PatientName"),
            patient_id=_text(answer, "PatientID"),
            birth_date=birth_date if DA.match(birth_date) else "",
            sex=sex if sex in SEXES else "",
            accession_number=_text(answer, "AccessionNumber"),
            study_instance_uid=_text(answer, "StudyInstanceUID"),
            requested_procedure=(_text(answer, "RequestedProcedureDescription")
                                 or _text(step, "ScheduledProcedureStepDescription")),
            scheduled_step_id=_text(step, "ScheduledProcedureStepID"),
            scheduled_start=_start(_text(step, "ScheduledProcedureStepStartDate"),
                                   _text(step, "ScheduledProcedureStepStartTime")),
        )


def answer_from_entries(entries: list[WorklistEntry], settings: WorklistSettings, *, unreadable: int,
                        queried_at: str) -> WorklistAnswer:
    """The answer for what a completed query returned, sorted by start time."""
    skipped = f" ({unreadable} unreadable entr{'y' if unreadable == 1 else 'ies'} skipped)" if unreadable else ""
    if not entries:
        return WorklistAnswer("empty", f"nothing scheduled today for {settings.station_ae} "
                                       f"({settings.modality}){skipped}", (), queried_at)
    ordered = tuple(sorted(entries, key=lambda entry: (entry.scheduled_start, entry.accession_number)))
    count = f"{len(ordered)} step{'s' if len(ordered) != 1 else ''}"
    return WorklistAnswer("ok", f"{count} scheduled today for {settings.station_ae}{skipped}",
                          ordered, queried_at)


def query_worklist(settings: WorklistSettings, *, today: datetime.date | None = None,
                   now: datetime.datetime | None = None) -> WorklistAnswer:
    """Asks the RIS once. Never raises for a network or RIS failure: status unreachable (no
    association) or error (refused, failed, or stopped answering), with one line."""
    today = today or datetime.date.today()
    where = f"RIS {settings.called_ae} at {settings.host}:{settings.port}"
    if not settings.host:
        return WorklistAnswer("error", "no worklist configured ([worklist] host is empty)")
    ae = AE(ae_title=settings.calling_ae)
    ae.add_requested_context(ModalityWorklistInformationFind)
    for name in ("connection_timeout", "acse_timeout", "dimse_timeout", "network_timeout"):
        setattr(ae, name, settings.timeout_s)
    # pynetdicom 3.0.4 reports a rejection as an abort when the RIS closes the connection right
    # after its A-ASSOCIATE-RJ (seen in ~3 % of wlmscpfs's rejections): the PDU itself decides.
    rejections = []
    on_pdu = (evt.EVT_PDU_RECV, lambda event: rejections.append(event.pdu)
              if isinstance(event.pdu, A_ASSOCIATE_RJ) else None)
    try:
        association = ae.associate(settings.host, settings.port, ae_title=settings.called_ae,
                                   evt_handlers=[on_pdu])
    except OSError as error:   # the host name does not resolve
        return WorklistAnswer("unreachable", f"cannot reach the {where}: {error.strerror or error}")
    if rejections:
        return WorklistAnswer("error", f"{where} refused the association: {rejections[0].reason_str}")
    if not association.is_established:
        return WorklistAnswer("unreachable", f"cannot reach the {where} (no answer within "
                                             f"{settings.timeout_s:g} s or connection refused)")
    if not association.accepted_contexts:
        association.release()
        return WorklistAnswer("error", f"the {where} does not offer the Modality Worklist service")
    entries, unreadable, final = [], 0, None
    try:
        for status, identifier in association.send_c_find(build_query(settings, today),
                                                          ModalityWorklistInformationFind):
            if not status:   # no response: timeout, abort or connection lost
                break
            if status.Status in PENDING and identifier is not None:
                try:
                    entries.append(entry_from_dataset(identifier))
                except Exception:   # whatever a malformed entry makes pydicom raise: skip it, say so
                    unreadable += 1
            elif status.Status not in PENDING:
                final = status.Status
    finally:
        if association.is_established:
            association.release()
    if final is None:
        return WorklistAnswer("error", f"the {where} stopped answering the query")
    if final != SUCCESS:
        return WorklistAnswer("error", f"the {where} answered the query with failure status 0x{final:04X}")
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds")
    return answer_from_entries(entries, settings, unreadable=unreadable, queried_at=stamp)


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(item) for item in value)
    return str(value).strip()


def _start(date: str, time: str) -> str:
    """YYYYMMDDHHMMSS from a DA and a TM (seconds and minutes may be absent); "" when either
    is missing or unusable (a start the screen cannot show is better left out than guessed)."""
    match = TM.match(time)
    if not (DA.match(date) and match):
        return ""
    hours, minutes, seconds = match.groups()[:3]
    return f"{date}{hours}{minutes or '00'}{seconds or '00'}"
