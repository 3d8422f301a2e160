"""A recording as DICOM: Video Photographic Image Storage (modality XC) instances, one per clip
(one per video part when a clip's video passes 4 GiB).

Patient and Study come from the recording's sealed identity card (appliance/vault/identity_card.py);
the Study Instance UID is the worklist's when the card has one, so the clip lands in the ordered
study. UIDs are derived, not random (UUID v5 under our namespace, as 2.25.<integer>): the series
from the session uid, the instance from the recording uid and part, so a repeated pass sends
the same instance again and PACS keeps one. The pixel data is the transcoded MP4 (media.py),
streamed from its encrypted scratch file by pydicom's `encapsulate_buffer`, with an empty Basic
Offset Table (a one-entry table breaks viewers).

    for dataset in build_instances(vault_path, signed, identity, "h264"):
        send(dataset)        # or pydicom.dcmwrite(fp, dataset); valid until the next one is asked for
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate_buffer
from pydicom.sequence import Sequence
from pydicom.uid import HEVCMP51, MPEG4HP41, VideoPhotographicImageStorage

from appliance import __version__, vault
from appliance.errors import ApplianceError
from appliance.gateway import media
from appliance.gateway.settings import SKIN
from appliance.recording.fmp4 import end_at_last_fragment
from appliance.vault.identity_card import open_card

TRANSFER_SYNTAXES = {"h264": MPEG4HP41, "hevc": HEVCMP51}
COMPRESSION_METHODS = {"h264": "ISO_14496_10", "hevc": "ISO_23008_2"}
UID_NAMESPACE = uuid.UUID("6f1e4a52-9c3b-5d0e-8a47-2b9d1c7e3f60")   # ours: every derived UID hangs off it
MANUFACTURER = "Treatment recording appliance"


def derived_uid(*parts: str) -> str:
    """A stable UID for the named thing (ISO/IEC 9834-8: a UUID as 2.25.<its integer>)."""
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, '/'.join(parts)).int}"


def instance_uid(recording_uid: str, part: int) -> str:
    return derived_uid("recording", recording_uid, "part", str(part))


def series_uid(session_uid: str) -> str:
    return derived_uid("session", session_uid, "series")


def study_uid(card: dict, session_uid: str) -> str:
    return card.get("study_instance_uid") or derived_uid("session", session_uid, "study")


@dataclass(frozen=True)
class ClipFacts:
    """What the verified manifest says about the clip (no secret, no PHI)."""

    session_uid: str
    recording_uid: str
    device_id: str
    interrupted: bool
    started_at: datetime       # UTC: the seal time less the clip's duration (the seal time when unknown)

    @classmethod
    def from_signed(cls, signed: dict) -> "ClipFacts":
        try:
            metadata = signed["metadata"]
            sealed_at = datetime.fromisoformat(signed["signed_at"]).astimezone(timezone.utc)
            duration = metadata.get("duration_s")
            started = sealed_at - timedelta(seconds=float(duration)) if isinstance(duration, (int, float)) else sealed_at
            return cls(session_uid=str(metadata["session"]), recording_uid=str(metadata["recording"]),
                       device_id=str(signed["device_key_id"]), interrupted=signed["state"] == "interrupted",
                       started_at=started)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ApplianceError(f"the manifest lacks what the DICOM object is built from ({error!r})") from None


def build_dataset(card: dict, clip: ClipFacts, part: media.VideoPart, transfer: str, *,
                  region: tuple[str, str, str] = SKIN) -> Dataset:
    """The instance for one video part; its Pixel Data reads the part's MP4 when written."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = VideoPhotographicImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = instance_uid(clip.recording_uid, part.index)
    ds.file_meta.TransferSyntaxUID = TRANSFER_SYNTAXES[transfer]
    ds.SpecificCharacterSet = "ISO_IR 192"     # UTF-8: names in any script
    ds.SOPClassUID = VideoPhotographicImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    _patient_and_study(ds, card, clip)
    _series_and_equipment(ds, card, clip)
    _image(ds, clip, part, transfer)
    coded = Dataset()
    coded.CodeValue, coded.CodingSchemeDesignator, coded.CodeMeaning = region
    ds.AnatomicRegionSequence = Sequence([coded])
    if tuple(region) == SKIN:
        ds.ImageLaterality = "U"      # unpaired: skin has no side
    else:
        ds.Laterality = None          # a clinic's region may be paired; its side is unknown to us (2C: empty)
    ds.PixelData = encapsulate_buffer([part.open()], has_bot=False)
    ds["PixelData"].VR = "OB"
    return ds


def _da_tm(moment: datetime) -> tuple[str, str]:
    """DA and TM in the gateway's local time (a naive moment already is: the RIS's scheduled start)."""
    local = moment.astimezone() if moment.tzinfo else moment
    return local.strftime("%Y%m%d"), local.strftime("%H%M%S.%f")


def _patient_and_study(ds: Dataset, card: dict, clip: ClipFacts) -> None:
    ds.PatientName = card["patient_name"]
    ds.PatientID = card["patient_id"]
    ds.PatientBirthDate = card["birth_date"]
    ds.PatientSex = card["sex"]
    ds.StudyInstanceUID = study_uid(card, clip.session_uid)
    scheduled = card.get("scheduled_start")
    study_start = datetime.strptime(scheduled, "%Y%m%d%H%M%S") if scheduled else clip.started_at
    ds.StudyDate, ds.StudyTime = _da_tm(study_start)
    ds.AccessionNumber = card["accession_number"]
    ds.ReferringPhysicianName = ""
    # What the RIS calls the study: the card has no Requested Procedure ID (IHE's choice), so
    # the accession number, which names the same order; empty for a manual session.
    ds.StudyID = card["accession_number"][:16]
    ds.StudyDescription = card["requested_procedure"]


def _series_and_equipment(ds: Dataset, card: dict, clip: ClipFacts) -> None:
    ds.Modality = "XC"
    ds.SeriesInstanceUID = series_uid(clip.session_uid)
    ds.SeriesNumber = 1           # the session's one series; the appliance does not number sessions
    ds.SeriesDescription = "Treatment recording"
    ds.Manufacturer = MANUFACTURER
    ds.DeviceSerialNumber = clip.device_id
    ds.SoftwareVersions = __version__
    # Dates and times are local, as the RIS schedules them; this says which local time.
    ds.TimezoneOffsetFromUTC = clip.started_at.astimezone().strftime("%z")


def _image(ds: Dataset, clip: ClipFacts, part: media.VideoPart, transfer: str) -> None:
    start = clip.started_at + timedelta(seconds=part.start_s)
    ds.InstanceNumber = part.index + 1
    ds.PatientOrientation = None
    ds.ContentDate, ds.ContentTime = _da_tm(start)
    ds.AcquisitionDateTime = start.astimezone().strftime("%Y%m%d%H%M%S.%f")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    notes = []
    if clip.interrupted:
        notes.append("Interrupted recording: the power or the appliance failed; "
                     "it ends at the last frame saved before that")
    if part.index:
        notes.append(f"Part {part.index + 1} of the recording: continues the previous part")
    if notes:
        ds.ImageComments = ". ".join(notes)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = part.height, part.width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = part.frames
    ds.FrameIncrementPointer = 0x00181063    # Frame Time
    ds.FrameTime = round(part.frame_time_ms, 4)
    rate = round(1000 / part.frame_time_ms)
    ds.CineRate = rate
    ds.RecommendedDisplayFrameRate = rate
    ds.StartTrim, ds.StopTrim = 1, part.frames
    ds.ActualFrameDuration = round(part.frame_time_ms)
    ds.PreferredPlaybackSequencing = 0
    ds.AcquisitionContextSequence = Sequence()
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = COMPRESSION_METHODS[transfer]


def build_instances(vault_path: Path, signed: dict, identity, transfer: str = "h264", *,
                    scratch_dir=None, max_part_bytes: int = media.PART_LIMIT,
                    region: tuple[str, str, str] = SKIN) -> Iterator[Dataset]:
    """The instances of one recording, built as its video is transcoded. `signed` are the
    manifest's verified signed fields (the caller verified them against the enrolled device).
    Each dataset's pixel data streams from a scratch file that lives until the next dataset is
    asked for (or the generator is closed): send or write it before moving on.
    A recording without an identity card cannot be filed to a patient: ApplianceError."""
    card = open_card(signed, identity)
    if card is None:
        raise ApplianceError("the recording carries no identity card: it cannot be filed to a patient")
    clip = ClipFacts.from_signed(signed)
    with vault.open_reader(vault_path, identity) as reader:
        end_at_last_fragment(reader)      # an interrupted recording ends at its last whole fragment
        if reader.plaintext_length == 0:
            raise ApplianceError("the recording holds no complete video fragment: nothing to send")
        for part in media.transcode(reader, media.TRANSFERS[transfer], scratch_dir=scratch_dir,
                                    max_part_bytes=max_part_bytes):
            try:
                yield build_dataset(card, clip, part, transfer, region=region)
            finally:
                part.close()
