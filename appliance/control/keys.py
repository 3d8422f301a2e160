"""The keys a recording needs: the recipients' public keys (encrypt to) and the device key (sign).

Read from disk when a clip starts, never kept across a missing file: a key removed while idle
must stop the next clip, and a key put back must clear the fault.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config import Settings
from appliance.errors import BadInput


@dataclass(frozen=True)
class Keys:
    recipients: list
    device_key: object


def load_keys(settings: Settings) -> Keys:
    """The recipients' public keys and the device key; BadInput saying which file is the problem,
    or that the recipients mix post-quantum and classical keys (refused before a clip starts,
    not by the vault writer in the middle of a session)."""
    from appliance.vault import keys, recipients
    public_keys = [keys.load_recipient_public(path) for path in settings.recipient_paths]
    recipients.check_mix([recipients.kind_of(key) for key in public_keys], allow_mixed=False)
    return Keys(public_keys, keys.load_device_key(settings.device_key_path))


class KeyRing:
    """The most recently loaded keys of one appliance."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._keys: Keys | None = None

    def load(self, *, reload: bool = False) -> Keys:
        """The keys, read again from disk when `reload` (or never read); BadInput if unreadable."""
        if self._keys is None or reload:
            self._keys = load_keys(self._settings)
        return self._keys

    def problem(self) -> str | None:
        """What is wrong with the keys on disk now, or None when they load."""
        try:
            self.load(reload=True)
        except BadInput as error:
            return str(error)
        return None
