"""The worklist query: pure dataset <-> entry conversion, then the real thing against Orthanc's
worklists plugin and dcmtk's wlmscpfs (entries with non-Latin names arrive intact; only today's
steps for our station and modality; unreachable, empty and error each one line)."""

import datetime
import shutil
import warnings
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from appliance.worklist.entries import WorklistEntry
from appliance.worklist.query import answer_from_entries, build_query, entry_from_dataset, query_worklist
from appliance.worklist.settings import WorklistSettings
from tests.servers.dcmtk import Wlmscpfs
from tests.servers.orthanc import Orthanc
from tests.servers.worklist_files import JAPANESE, TODAY, write_worklist_file

AT_NINE = TODAY.strftime("%Y%m%d") + "090000"
MUELLER = WorklistEntry(patient_name="Müller^Zoë", patient_id="P-0001", birth_date="19800102", sex="F",
                        accession_number="ACC-1", study_instance_uid="1.2.826.0.1.3680043.10.1.1",
                        requested_procedure="Laser, left forearm", scheduled_step_id="SPS-1",
                        scheduled_start=AT_NINE)
YAMADA = WorklistEntry(patient_name="Yamada^Tarou=山田^太郎=やまだ^たろう", patient_id="P-0002",
                       birth_date="19700101", sex="M", accession_number="ACC-2",
                       study_instance_uid="1.2.826.0.1.3680043.10.1.2", requested_procedure="Laser, face",
                       scheduled_step_id="SPS-2", scheduled_start=AT_NINE[:8] + "101500")
ROOM = "ROOM1"


def read_back(path) -> Dataset:
    """A worklist file as a C-FIND answer arrives: raw bytes, decoded by their character set."""
    return dcmread(BytesIO(path.read_bytes()))


def set_invalid(dataset: Dataset, **values):
    """Puts values a RIS may send into an answer (pydicom warns when a test sets them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for keyword, value in values.items():
            setattr(dataset, keyword, value)


# --- pure -------------------------------------------------------------------------------------

def test_the_query_matches_station_modality_and_today_and_asks_for_every_entry_field():
    query = build_query(WorklistSettings(station_ae=ROOM, modality="XC"), datetime.date(2026, 12, 1))
    step = query.ScheduledProcedureStepSequence[0]
    assert (step.ScheduledStationAETitle, step.Modality, step.ScheduledProcedureStepStartDate) == \
        (ROOM, "XC", "20261201")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                    "StudyInstanceUID", "RequestedProcedureDescription", "SpecificCharacterSet"):
        assert query[keyword].value in ("", None)
    assert step.ScheduledProcedureStepStartTime in ("", None) and step.ScheduledProcedureStepID in ("", None)


@pytest.mark.parametrize("entry, character_set", [(MUELLER, "ISO_IR 192"), (YAMADA, JAPANESE),
                                                  (MUELLER, "ISO_IR 100")])
def test_an_answer_decodes_to_the_entry_in_its_character_set(tmp_path, entry, character_set):
    path = write_worklist_file(tmp_path, entry, station_ae=ROOM, character_set=character_set)
    if character_set == JAPANESE:   # the name really travels as ISO 2022 escapes, not UTF-8
        assert b"\x1b$B" in path.read_bytes() and "山田".encode() not in path.read_bytes()
    assert entry_from_dataset(read_back(path)) == entry


@pytest.mark.parametrize("time, start", [("0930", "093000"), ("093015.250", "093015"), ("09", "090000"),
                                         ("", None), ("9:30", None)])
def test_the_start_time_is_normalised_or_left_out(tmp_path, time, start):
    answer = read_back(write_worklist_file(tmp_path, MUELLER, station_ae=ROOM))
    set_invalid(answer.ScheduledProcedureStepSequence[0], ScheduledProcedureStepStartTime=time,
                ScheduledProcedureStepStartDate="20261201")
    expected = "20261201" + start if start else ""
    assert entry_from_dataset(answer).scheduled_start == expected


def test_values_a_ris_filled_wrongly_become_empty_and_the_entry_is_kept(tmp_path):
    answer = read_back(write_worklist_file(tmp_path, MUELLER, station_ae=ROOM))
    set_invalid(answer, PatientBirthDate="02.01.1980", PatientSex="X")
    del answer.RequestedProcedureDescription
    set_invalid(answer.ScheduledProcedureStepSequence[0], ScheduledProcedureStepStartDate="heute")
    entry = entry_from_dataset(answer)
    assert (entry.birth_date, entry.sex, entry.scheduled_start) == ("", "", "")
    assert entry.requested_procedure == MUELLER.requested_procedure   # from the step's description
    assert (entry.patient_name, entry.accession_number) == (MUELLER.patient_name, MUELLER.accession_number)


def test_an_answer_with_only_a_name_is_an_entry_with_empty_fields():
    answer = Dataset()
    answer.PatientName = "Doe^Jane"
    assert entry_from_dataset(answer) == WorklistEntry("Doe^Jane", "", "", "", "", "", "", "", "")


def test_the_answer_is_ordered_by_start_and_counts_what_it_skipped():
    settings = WorklistSettings(station_ae=ROOM)
    answer = answer_from_entries([YAMADA, MUELLER], settings, unreadable=1, queried_at="t")
    assert (answer.status, answer.entries, answer.queried_at) == ("ok", (MUELLER, YAMADA), "t")
    assert answer.line == f"2 steps scheduled today for {ROOM} (1 unreadable entry skipped)"
    nothing = answer_from_entries([], settings, unreadable=2, queried_at="t")
    assert (nothing.status, nothing.line) == ("empty", f"nothing scheduled today for {ROOM} (XC) "
                                                       f"(2 unreadable entries skipped)")
    assert answer_from_entries([MUELLER], settings, unreadable=0, queried_at="t").line == \
        f"1 step scheduled today for {ROOM}"


# --- against the real servers -----------------------------------------------------------------

@pytest.fixture(params=["wlmscpfs", "orthanc"])
def ris(request, tmp_path):
    """A real worklist server, empty; yields (server, settings pointing at it)."""
    if request.param == "wlmscpfs":
        server = Wlmscpfs().start(tmp_path)
    else:
        worklists = tmp_path / "worklists"
        worklists.mkdir()
        server = Orthanc().start(tmp_path, worklists_dir=worklists)
    settings = WorklistSettings(host="127.0.0.1", port=server.dicom_port, called_ae=server.aet,
                                calling_ae="TREATMENT1", station_ae=ROOM, timeout_s=20)
    yield server, settings
    server.stop()


def test_todays_steps_for_this_station_arrive_intact_with_non_latin_names(ris):
    server, settings = ris
    write_worklist_file(server.worklists_dir, MUELLER, station_ae=ROOM)
    write_worklist_file(server.worklists_dir, YAMADA, station_ae=ROOM, character_set=JAPANESE)
    other_room = WorklistEntry(**{**MUELLER.__dict__, "accession_number": "ACC-3", "scheduled_step_id": "SPS-3"})
    write_worklist_file(server.worklists_dir, other_room, station_ae="ROOM2")
    other_modality = WorklistEntry(**{**MUELLER.__dict__, "accession_number": "ACC-4", "scheduled_step_id": "SPS-4"})
    write_worklist_file(server.worklists_dir, other_modality, station_ae=ROOM, modality="US")
    yesterday = (TODAY - datetime.timedelta(days=1)).strftime("%Y%m%d") + "090000"
    write_worklist_file(server.worklists_dir, WorklistEntry(**{
        **MUELLER.__dict__, "accession_number": "ACC-5", "scheduled_step_id": "SPS-5",
        "scheduled_start": yesterday}), station_ae=ROOM)

    answer = query_worklist(settings, today=TODAY)   # the day the files were written for

    assert answer.status == "ok" and answer.entries == (MUELLER, YAMADA)   # by start time
    assert answer.line == f"2 steps scheduled today for {ROOM}"
    answered = datetime.datetime.fromisoformat(answer.queried_at)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - answered) < datetime.timedelta(minutes=5)


def test_nothing_scheduled_is_empty_in_one_line(ris):
    server, settings = ris
    write_worklist_file(server.worklists_dir, MUELLER, station_ae="ROOM2")
    answer = query_worklist(settings, today=TODAY)
    assert (answer.status, answer.entries) == ("empty", ())
    assert answer.line == f"nothing scheduled today for {ROOM} (XC)"


def test_a_stopped_server_is_unreachable_in_one_line(ris):
    server, settings = ris
    server.stop()
    answer = query_worklist(settings)
    assert answer.status == "unreachable"
    assert answer.line.startswith(f"cannot reach the RIS {server.aet} at 127.0.0.1:{server.dicom_port}")


def test_wlmscpfs_refusing_an_unknown_called_ae_is_an_error_in_one_line(tmp_path):
    server = Wlmscpfs().start(tmp_path)
    try:
        settings = WorklistSettings(host="127.0.0.1", port=server.dicom_port, called_ae="NOT-THE-RIS",
                                    station_ae=ROOM)
        answer = query_worklist(settings)
    finally:
        server.stop()
    assert answer.status == "error"
    assert answer.line.startswith(f"RIS NOT-THE-RIS at 127.0.0.1:{server.dicom_port} refused the association: ")


def test_a_refusal_is_an_error_every_time_however_fast_the_ris_hangs_up(tmp_path):
    # wlmscpfs closes the connection right after its A-ASSOCIATE-RJ; pynetdicom alone reported
    # ~3 % of these as aborts ("unreachable"). A hundred tries catch that with ~95 % odds.
    server = Wlmscpfs().start(tmp_path)
    try:
        settings = WorklistSettings(host="127.0.0.1", port=server.dicom_port, called_ae="NOT-THE-RIS",
                                    station_ae=ROOM, timeout_s=20)
        statuses = {query_worklist(settings).status for _ in range(100)}
    finally:
        server.stop()
    assert statuses == {"error"}


def test_orthanc_failing_the_query_is_an_error_in_one_line(tmp_path):
    worklists = tmp_path / "worklists"
    worklists.mkdir()
    server = Orthanc().start(tmp_path, worklists_dir=worklists)
    try:
        shutil.rmtree(worklists)   # the plugin cannot read its database: Orthanc answers a failure
        answer = query_worklist(WorklistSettings(host="127.0.0.1", port=server.dicom_port,
                                                 called_ae=server.aet, station_ae=ROOM))
    finally:
        server.stop()
    assert answer.status == "error"
    assert answer.line == (f"the RIS {server.aet} at 127.0.0.1:{server.dicom_port} answered the query "
                           f"with failure status 0xC000")


def test_without_a_configured_host_the_query_says_so():
    answer = query_worklist(WorklistSettings())
    assert (answer.status, answer.line) == ("error", "no worklist configured ([worklist] host is empty)")


def test_a_host_name_that_does_not_resolve_is_unreachable_in_one_line():
    answer = query_worklist(WorklistSettings(host="ris.example.invalid", called_ae="RIS1", timeout_s=5))
    assert answer.status == "unreachable"
    assert answer.line.startswith("cannot reach the RIS RIS1 at ris.example.invalid:104: ")
    assert "\n" not in answer.line
