"""What the worklist screen shows for a worklist entry, without Qt: the patient's name, birth date
and scheduled time as a technician reads them off a wristband and a day list.

Names arrive as DICOM PN ("Family^Given^Middle^Prefix^Suffix", up to three "="-separated
groups: alphabetic, ideographic, phonetic); dates as DICOM DA/DT digits. Anything that is not
in the expected form is shown as it came, never hidden or guessed at: the technician compares it
with the wristband."""

from __future__ import annotations

from datetime import datetime

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
NOT_GIVEN = "not given"
NO_NAME = "(no name)"


def _western(group: str) -> str:
    """"Family^Given^Middle^Prefix^Suffix" as "Family, Prefix Given Middle Suffix"."""
    family, given, middle, prefix, suffix = (group.split("^") + [""] * 5)[:5]
    rest = " ".join(part for part in (prefix, given, middle, suffix) if part)
    return f"{family}, {rest}" if family and rest else family or rest


def _ideographic(group: str) -> str:
    """CJK names read family name first, separated by a space, without a comma."""
    return " ".join(part for part in group.split("^") if part)


def display_name(person_name: str) -> str:
    """A DICOM PN for the screen: the alphabetic form, with the ideographic one in brackets when
    the RIS sent both (or alone when it sent only that); the phonetic group only when it is all
    there is."""
    groups = (person_name.split("=") + ["", ""])[:3]
    alphabetic, ideographic = _western(groups[0].strip()), _ideographic(groups[1].strip())
    if alphabetic and ideographic:
        return f"{alphabetic} ({ideographic})"
    return alphabetic or ideographic or _ideographic(groups[2].strip()) or NO_NAME


def display_birth_date(birth_date: str) -> str:
    """YYYYMMDD as "7 Mar 1984": the month in letters, so that day and month cannot be swapped."""
    if not birth_date:
        return NOT_GIVEN
    if len(birth_date) != 8 or not birth_date.isdigit() or not 1 <= int(birth_date[4:6]) <= 12:
        return birth_date
    return f"{int(birth_date[6:])} {MONTHS[int(birth_date[4:6]) - 1]} {birth_date[:4]}"


def display_time(scheduled_start: str) -> str:
    """The scheduled start's time of day (the list only holds today's steps), HH:MM."""
    if len(scheduled_start) >= 12 and scheduled_start[:12].isdigit():
        return f"{scheduled_start[8:10]}:{scheduled_start[10:12]}"
    return "--:--"


def display_sex(sex: str) -> str:
    return {"M": "male", "F": "female", "O": "other"}.get(sex, NOT_GIVEN)


def list_row(entry) -> str:
    """One entry in the day's list: time and name, then ID and procedure."""
    procedure = entry.requested_procedure or "procedure not given"
    return (f"{display_time(entry.scheduled_start)}   {display_name(entry.patient_name)}\n"
            f"        ID {entry.patient_id or NOT_GIVEN}  ·  {procedure}")


def day_order(entries) -> list:
    """Entries by scheduled start, those without a time last, in the order the RIS sent them."""
    return sorted(entries, key=lambda entry: (not entry.scheduled_start, entry.scheduled_start))


def answer_line(answer) -> tuple[str, bool]:
    """The worklist screen's one line for the service's answer (a WorklistAnswer), and whether it
    is a problem (then manual entry is the way on)."""
    if isinstance(answer, Exception):        # the client promises not to raise; if it did anyway
        return "The worklist could not be read because of an internal error. Use Manual entry.", True
    if answer.status == "ok":
        count = len(answer.entries)
        updated = f" (updated {local_time(answer.queried_at)})" if local_time(answer.queried_at) else ""
        return f"{count} procedure{'s' if count != 1 else ''} scheduled today{updated}. Tap the patient.", False
    if answer.status == "empty":
        return "The worklist has no procedure for this room today. Use Manual entry.", True
    failure = "is unreachable" if answer.status == "unreachable" else "answered with an error"
    if answer.entries:   # the service kept today's last list: still valid, shown with its time
        since = f" from {local_time(answer.queried_at)}" if local_time(answer.queried_at) else ""
        return (f"The worklist {failure}: {_clause(answer.line)}. Showing the list{since}: tap the patient "
                f"or use Manual entry.", True)
    return f"The worklist {failure}: {_clause(answer.line)}. Use Manual entry.", True


def local_time(iso_utc: str) -> str:
    """When the RIS answered (ISO 8601 with its offset), as the appliance's local HH:MM; "" if unknown."""
    try:
        moment = datetime.fromisoformat(iso_utc)
    except ValueError:
        return ""
    return moment.astimezone().strftime("%H:%M") if moment.tzinfo else ""


def _clause(line: str) -> str:
    """The service's sentence inside ours: without its full stop, and never empty."""
    return line.strip().rstrip(".") or "no reason given"
