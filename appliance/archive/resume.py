"""What a multipart upload needs to survive a kill: the part plan, and the resume state (upload
id, part size, each part's digests) written durably BEFORE the part it describes is sent.

On restart the uploader asks the server which parts it holds (ListParts) and sends only those
whose size and ETag (the part's MD5) do not match the record. The state file is named by a hash
of the object key, lives in the archive's own directory (0700), and is written atomically (0600).
It holds no secret and no patient data: key, sizes, digests, the upload id.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from appliance.atomic import write_atomically

FORMAT = "archive-upload/1"
MAX_PARTS = 10_000          # S3's limit on parts in one upload


@dataclass(frozen=True)
class Part:
    number: int             # 1-based, as S3 numbers parts
    offset: int
    length: int


def plan_parts(size: int, part_size: int) -> list[Part]:
    """The parts a file of `size` bytes is sent in: all `part_size` long but the last."""
    if part_size <= 0:
        raise ValueError(f"part size must be positive, got {part_size}")
    if size <= 0:
        raise ValueError(f"a multipart upload needs at least one byte, got {size}")
    count = -(-size // part_size)
    if count > MAX_PARTS:
        raise ValueError(f"{size} bytes need {count} parts of {part_size}, more than S3's {MAX_PARTS}")
    return [Part(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


@dataclass(frozen=True)
class PartRecord:
    length: int
    md5: str                # hex: the part's ETag on an unencrypted S3 object
    sha256: str             # hex: sent as x-amz-checksum-sha256


@dataclass(frozen=True)
class ResumeState:
    key: str
    size: int               # the whole file
    sha256: str             # hex, the whole file: a changed file never resumes an old upload
    part_size: int
    upload_id: str
    parts: dict[int, PartRecord] = field(default_factory=dict)

    def with_part(self, number: int, record: PartRecord) -> ResumeState:
        return replace(self, parts={**self.parts, number: record})

    def matches(self, key: str, size: int, sha256: str, part_size: int) -> bool:
        return (self.key, self.size, self.sha256, self.part_size) == (key, size, sha256, part_size)


def encode(state: ResumeState) -> bytes:
    document = {"format": FORMAT, "key": state.key, "size": state.size, "sha256": state.sha256,
                "part_size": state.part_size, "upload_id": state.upload_id,
                "parts": {str(n): {"length": p.length, "md5": p.md5, "sha256": p.sha256}
                          for n, p in sorted(state.parts.items())}}
    return json.dumps(document, sort_keys=True).encode()


def decode(data: bytes) -> ResumeState:
    """The state `encode` wrote; ValueError for anything else (the uploader then starts over)."""
    try:
        document = json.loads(data)
        if document["format"] != FORMAT:
            raise ValueError(f"not {FORMAT}: {document['format']!r}")
        parts = {int(n): PartRecord(_whole(p["length"]), _hex(p["md5"], 32), _hex(p["sha256"], 64))
                 for n, p in document["parts"].items()}
        state = ResumeState(_text(document["key"]), _whole(document["size"]),
                            _hex(document["sha256"], 64), _whole(document["part_size"]),
                            _text(document["upload_id"]), parts)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"unreadable resume state: {type(error).__name__}") from None
    plan = {part.number: part.length for part in plan_parts(state.size, state.part_size)}
    if any(plan.get(n) != record.length for n, record in parts.items()):
        raise ValueError("resume state names parts outside its own plan")
    return state


def _whole(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a byte count: {value!r}")
    return value


def _hex(value, length: int) -> str:
    if not isinstance(value, str) or len(value) != length or value.strip("0123456789abcdef"):
        raise ValueError(f"not {length} lower-case hex digits: {value!r}")
    return value


def _text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a non-empty string: {value!r}")
    return value


class StateStore:
    """Resume states, one file per object key, in `directory`."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".upload")

    def load(self, key: str) -> ResumeState | None:
        """The state for `key`, or None when there is none or it cannot be used."""
        try:
            state = decode(self.path(key).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        return state if state.key == key else None

    def save(self, state: ResumeState) -> None:
        """Durable when it returns (fsynced file and directory): only then may the part go out."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.path(state.key), encode(state), overwrite=True)

    def forget(self, key: str) -> None:
        """Removes the state, and any half-written one a kill left behind (atomic.py's temp file)."""
        path = self.path(key)
        for stale in [path, *self.directory.glob(f".{path.name}.*.partial")]:
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
