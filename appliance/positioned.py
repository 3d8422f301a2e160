"""One seek rule for the project's random-access streams (the vault reader, the gateway's
encrypted scratch file and its moov-first view), so each answers SEEK_SET, SEEK_CUR and SEEK_END
alike and only says how long it is."""

from __future__ import annotations

import os


class Positioned:
    """Mixin (before the io base class) for a stream that keeps `_position` and knows its `_end()`."""

    _position = 0

    def _end(self) -> int:
        raise NotImplementedError

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._end()}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position
