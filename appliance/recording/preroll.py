"""The pre-roll ring: the last N seconds of encoded video, always starting at a keyframe.

Pure bookkeeping over opaque entries. A whole GOP leaves the ring only when the keyframe after
it is itself at least N seconds old, so a trigger always finds at least N seconds before it
(once that much has been captured) and never more than N plus one GOP.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator


@dataclass(frozen=True)
class Entry:
    capture_ns: int
    keyframe: bool
    payload: Any


class PreRoll:
    def __init__(self, seconds: float):
        self._span_ns = int(seconds * 1e9)
        self._entries: deque[Entry] = deque()
        self._keyframes: deque[int] = deque()   # capture_ns of each keyframe in the ring

    def push(self, entry: Entry) -> None:
        if not self._entries and not entry.keyframe:
            return  # nothing can be decoded before the first keyframe
        self._entries.append(entry)
        if entry.keyframe:
            self._keyframes.append(entry.capture_ns)
        newest = entry.capture_ns
        while len(self._keyframes) > 1 and newest - self._keyframes[1] >= self._span_ns:
            self._keyframes.popleft()
            while not self._entries[1].keyframe:
                self._entries.popleft()
            self._entries.popleft()

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._keyframes.clear()
