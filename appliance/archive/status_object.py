"""The fleet status object: a small JSON document the archive uplink signs with the device key and
posts every minute to `<device id>/status/latest.json` in the archive bucket, for the clinic
portal's fleet page (docs/fleet-status.md). No PHI: a state, flags, counts, times, a version.

Signed like an audit anchor ({"signed": {...}, "signatures": {...}}, the same device key and
canonical bytes); its own format name inside the signed fields keeps it from ever passing for a
manifest or an anchor, and the reverse. Pure here: the key, the codec and the check against the
enrolled device keys. Posting: uplink.py; judging: appliance/portal/fleet_health.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from appliance.vault import signing
from appliance.vault.manifest import canonical

FORMAT = "appliance-fleet-status/1"
NOT_REPORTING = "not reporting"      # the uplink runs, the recording software does not (or hangs)
STATES = ("Idle", "Armed", "Recording", "Finalizing", "Encrypting", "Error", NOT_REPORTING)
_KEY = re.compile(r"^(?P<device>[0-9a-f]{16})/status/latest\.json$")
_DEVICE = re.compile(r"^[0-9a-f]{16}$")

GENUINE, FORGED, UNKNOWN_DEVICE = "genuine", "forged", "unknown device"


@dataclass(frozen=True)
class FleetStatus:
    device_key_id: str                  # 16 hex: the device key's id, the archive prefix
    posted_at: float                    # the appliance's clock, seconds since the epoch
    state: str                          # one of STATES
    camera_up: bool | None              # None while not reporting
    link_up: bool | None                # the treatment controller link; None while not reporting
    disk_seconds_left: float | None     # recording time left on disk; None while not reporting
    backlog_count: int                  # finished recordings without a confirmed archive copy ...
    backlog_bytes: int                  # ... their size ...
    backlog_oldest_age_s: float | None  # ... and how long the oldest has waited (None: none waits)
    last_recording_at: float | None     # when the newest recording started
    software_version: str
    clock_offset_s: float | None        # the appliance's clock minus the archive's Date; None: not measured
    fault: str | None                   # the active fault's kind (appliance.faults.FaultKind)


_TYPES = {
    "device_key_id": (str,), "posted_at": (int, float), "state": (str,),
    "camera_up": (bool, type(None)), "link_up": (bool, type(None)),
    "disk_seconds_left": (int, float, type(None)), "backlog_count": (int,), "backlog_bytes": (int,),
    "backlog_oldest_age_s": (int, float, type(None)), "last_recording_at": (int, float, type(None)),
    "software_version": (str,), "clock_offset_s": (int, float, type(None)), "fault": (str, type(None)),
}


@dataclass(frozen=True)
class OpenedStatus:
    device_key_id: str            # the device whose prefix the object was found under
    verdict: str                  # GENUINE | FORGED | UNKNOWN_DEVICE
    status: FleetStatus | None    # only when GENUINE: a forged status's claims are not facts
    problem: str | None = None    # why it is not genuine, one line


def status_key(device_key_id: str) -> str:
    """The pinned object key: one per device, overwritten by every post (docs/archive.md)."""
    return f"{device_key_id}/status/latest.json"


def device_of_key(key: str) -> str | None:
    match = _KEY.match(key)
    return match["device"] if match else None


def is_status_key(key: str) -> bool:
    return device_of_key(key) is not None


def seal_status(status: FleetStatus, device_key) -> bytes:
    """The object's bytes: the status's fields plus the format name, signed by `device_key`."""
    problem = _field_problem(asdict(status))
    if problem:
        raise ValueError(problem)
    device_key = signing.as_device_key(device_key)
    if device_key.public_key().key_id != status.device_key_id:
        raise ValueError("a status is signed by the device it names")
    signed = {"format": FORMAT, **asdict(status)}
    document = {"signed": signed, "signatures": device_key.sign(canonical(signed))}
    return json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"


def open_status(data: bytes, key: str, enrolled: dict[str, signing.DevicePublicKey]) -> OpenedStatus:
    """The status object `data` found at `key`, judged against the `enrolled` device keys (by key
    id): GENUINE when it is well formed, names the device of its key, and every signature of that
    enrolled device holds; UNKNOWN_DEVICE when no enrolled key has that id; FORGED otherwise."""
    device = device_of_key(key)
    if device is None:
        raise ValueError(f"{key} is not a status object's key")
    if device not in enrolled:
        return OpenedStatus(device, UNKNOWN_DEVICE, None, "its device key is not enrolled at this gateway")
    try:
        document = json.loads(data)
        signed, signatures = document["signed"], document["signatures"]
        ok = isinstance(signed, dict) and isinstance(signatures, dict) and signed.get("format") == FORMAT
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        return OpenedStatus(device, FORGED, None, f"not a {FORMAT} object")
    claims = {name: value for name, value in signed.items() if name != "format"}
    problem = _field_problem(claims)
    if problem:
        return OpenedStatus(device, FORGED, None, f"malformed: {problem}")
    if claims["device_key_id"] != device:
        return OpenedStatus(device, FORGED, None, f"it names device {claims['device_key_id']}: copied or forged")
    problem = signing.verify_all(enrolled[device], signatures, canonical(signed))
    if problem:
        return OpenedStatus(device, FORGED, None, problem.replace("manifest", "status"))
    return OpenedStatus(device, GENUINE, FleetStatus(**claims))


def _field_problem(claims: dict) -> str | None:
    """What is wrong with the fields, or None: exactly FleetStatus's fields, each of its type."""
    if set(claims) != set(_TYPES):
        return "fields " + ", ".join(sorted(set(claims) ^ set(_TYPES))) + " missing or unexpected"
    for name, types in _TYPES.items():
        value = claims[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{name} has the wrong type"
    if not _DEVICE.match(claims["device_key_id"]):
        return "device_key_id is not 16 hex digits"
    if claims["state"] not in STATES:
        return f"state {claims['state']!r} is not one of the appliance's"
    if claims["backlog_count"] < 0 or claims["backlog_bytes"] < 0:
        return "a negative backlog"
    return None
