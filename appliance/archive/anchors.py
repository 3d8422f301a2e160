"""Audit anchors: the audit chain's head, signed with the device key, kept in the archive as an
immutable object, so that a rewrite of the whole local chain is detected (docs/archive.md#anchors).

An anchor names one entry of the chain by (seq, hash). The hash covers every earlier entry, so a
chain that still holds each anchored (seq, hash) is, up to the newest anchor, the chain the
archive saw. The signed fields carry their own format name: a manifest signature (the same device
key) can never pass for an anchor's, nor the reverse.

Pure here: the object key, the codec and the check against a local chain. The upload and the
listing live in anchoring.py.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from appliance.errors import IntegrityError
from appliance.storage.audit import AuditEntry, first_broken_link
from appliance.vault import signing
from appliance.vault.manifest import canonical

FORMAT = "treatment-audit-anchor/1"
PREFIX = "audit-anchors/"
_KEY = re.compile(r"^(?P<device>[0-9a-f]{16})/audit-anchors/(?P<seq>[0-9]{12})\.json$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Anchor:
    device_key_id: str
    seq: int             # the anchored entry
    hash: str            # its hash (covers every entry before it)
    entry_at: float      # the anchored entry's own time (seconds since the epoch)
    anchored_at: str     # when the anchor was signed, ISO 8601 UTC


def anchor_prefix(device_key_id: str) -> str:
    return f"{device_key_id}/{PREFIX}"


def anchor_key(device_key_id: str, seq: int) -> str:
    """The pinned object key; zero-padded, so the keys list in seq order."""
    return f"{anchor_prefix(device_key_id)}{seq:012d}.json"


def seq_of_key(key: str) -> int | None:
    """The seq an anchor's object key names, or None when the key is not an anchor's."""
    match = _KEY.match(key)
    return int(match["seq"]) if match else None


def seal_anchor(head: AuditEntry, device_key, anchored_at: datetime) -> bytes:
    """The anchor object's bytes: {"signed": {...}, "signatures": {...}}, like a manifest."""
    device_key = signing.as_device_key(device_key)
    public = device_key.public_key()
    signed = {
        "format": FORMAT,
        "device_key_id": public.key_id,
        "device_public_keys": {name: base64.b64encode(value).decode()
                               for name, value in public.der_by_algorithm().items()},
        "seq": head.seq,
        "hash": head.hash,
        "entry_at": head.at,
        "anchored_at": anchored_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
    }
    document = {"signed": signed, "signatures": device_key.sign(canonical(signed))}
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def open_anchor(data: bytes, device: signing.DevicePublicKey, key: str | None = None) -> Anchor:
    """The anchor in `data` when `device` signed it (every signature it declares holds) and, given
    its object `key`, the key names its device and seq; IntegrityError (one line) otherwise."""
    where = key or "anchor"
    try:
        document = json.loads(data)
        signed, signatures = document["signed"], document["signatures"]
        if signed["format"] != FORMAT:
            raise IntegrityError(f"{where} is not a {FORMAT} object")
        public = signing.public_from_der({name: base64.b64decode(value, validate=True)
                                          for name, value in signed["device_public_keys"].items()})
        anchor = Anchor(signed["device_key_id"], signed["seq"], signed["hash"], signed["entry_at"],
                        signed["anchored_at"])
        well_formed = isinstance(signatures, dict) and type(anchor.seq) is int and anchor.seq > 0 \
            and isinstance(anchor.hash, str) and _HASH.match(anchor.hash) \
            and isinstance(anchor.entry_at, (int, float)) and isinstance(anchor.anchored_at, str)
    except IntegrityError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IntegrityError(f"{where} is malformed") from None
    if not well_formed:
        raise IntegrityError(f"{where} is malformed")
    if public != device or anchor.device_key_id != device.key_id:
        raise IntegrityError(f"{where} was signed by another device key than {device.key_id}")
    problem = signing.verify_all(public, signatures, canonical(signed))
    if problem:
        raise IntegrityError(f"{where}: {problem.replace('manifest', 'anchor')}")
    if key is not None and key != anchor_key(device.key_id, anchor.seq):
        raise IntegrityError(f"{where} holds the anchor of entry {anchor.seq}: it was copied there")
    return anchor


def chain_problems(entries: Iterable[AuditEntry], anchors: Iterable[Anchor]) -> list[str]:
    """What a local chain lacks against the archive's anchors, one line each; [] when the chain
    is intact and holds every anchored (seq, hash)."""
    entries = list(entries)
    report = first_broken_link(entries)
    problems = [] if report.ok else [f"local audit trail broken at entry {report.broken_at}: {report.problem}"]
    hashes = {entry.seq: entry.hash for entry in entries}
    last = entries[-1].seq if entries else 0
    for anchor in sorted(anchors, key=lambda anchor: anchor.seq):
        if anchor.seq not in hashes:
            problems.append(f"anchor of entry {anchor.seq} (signed {anchor.anchored_at}): the local trail "
                            f"ends at entry {last}: entries were removed")
        elif hashes[anchor.seq] != anchor.hash:
            problems.append(f"anchor of entry {anchor.seq} (signed {anchor.anchored_at}): the local entry "
                            "differs from the anchored one: the trail was rewritten")
    return problems
