"""Worklist files (.wl: DICOM files, as Orthanc's ModalityWorklists plugin and dcmtk's wlmscpfs
read them), written with pydicom from a WorklistEntry, the way a RIS would fill them."""

from __future__ import annotations

import datetime
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from appliance.worklist.entries import WorklistEntry

# Files carry a Specific Character Set; these are the ones the tests use.
UTF8 = "ISO_IR 192"
JAPANESE = ["", "ISO 2022 IR 87"]   # ASCII first, then JIS X 0208 by ISO 2022 escapes

# The service asks for the steps of its own today. Tests run in a time zone where it is about
# noon when they start, so "today" (the files' date, the date asked for) stays one day for
# hours whatever the wall clock says: no test fails for running across midnight. Processes a
# test starts get it by their environment (STEADY_DAY_ENV: TZ, POSIX sign = west of UTC).
_HOURS_TO_NOON = 12 - datetime.datetime.now(datetime.timezone.utc).hour
TODAY = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=_HOURS_TO_NOON))).date()
STEADY_DAY_ENV = {"TZ": f"STEADY{-_HOURS_TO_NOON:+d}"}


def write_worklist_file(directory: Path, entry: WorklistEntry, *, station_ae: str,
                        modality: str = "XC", character_set=UTF8, name: str | None = None) -> Path:
    """Writes `entry` as one scheduled procedure step for `station_ae` and returns the path.
    An entry without scheduled_start is scheduled TODAY, at noon."""
    start = entry.scheduled_start or TODAY.strftime("%Y%m%d") + "120000"
    step = Dataset()
    step.ScheduledStationAETitle = station_ae
    step.Modality = modality
    step.ScheduledProcedureStepStartDate = start[:8]
    step.ScheduledProcedureStepStartTime = start[8:]
    step.ScheduledProcedureStepID = entry.scheduled_step_id
    step.ScheduledProcedureStepDescription = entry.requested_procedure
    step.ScheduledPerformingPhysicianName = ""

    dataset = Dataset()
    dataset.SpecificCharacterSet = character_set
    dataset.PatientName = entry.patient_name
    dataset.PatientID = entry.patient_id
    dataset.PatientBirthDate = entry.birth_date
    dataset.PatientSex = entry.sex
    dataset.AccessionNumber = entry.accession_number
    dataset.StudyInstanceUID = entry.study_instance_uid
    dataset.RequestedProcedureDescription = entry.requested_procedure
    dataset.RequestedProcedureID = entry.scheduled_step_id
    dataset.ReferringPhysicianName = ""
    dataset.ScheduledProcedureStepSequence = [step]

    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"   # dcmtk's worklist file class
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = Path(directory) / f"{name or entry.scheduled_step_id or 'entry'}.wl"
    dataset.save_as(path, enforce_file_format=True)
    return path
