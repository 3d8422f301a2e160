"""Rewrap: add or remove recipients of a version 2 vault without re-encrypting its body.

A holder of one recipient key unwraps the data key (which checks the header MAC), builds the
new stanza list and MAC, and replaces the file atomically (temp file + rename: a crash leaves the
old file or the new one): new header || the old body, byte for byte. The signed manifest still
verifies (it signs the fixed header and the body) and reports the recipient change.

A removed recipient's stanza is gone from the new file; copies of the old file taken before
still hold it (a rewrap cannot reach backups). Version 1 vaults bind their whole header into
the body's key, so they can only be re-encrypted (docs/vault-format.md#upgrading-version-1).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from appliance.atomic import create_atomically
from appliance.errors import BadInput
from appliance.vault import header as vault_header
from appliance.vault.reader import VaultReader

COPY_CHUNK = 1 << 20


def rewrap(vault_path: Path, identity, *, add=(), remove=(), allow_mixed: bool = False):
    """Rewrites the header of `vault_path`; returns (old header, new header)."""
    vault_path = Path(vault_path)
    if not add and not remove:
        raise BadInput("nothing to rewrap: give recipients to add or key ids to remove")
    with vault_header.open_vault(vault_path) as source:
        old = vault_header.read_header(source.read)
        if old.version == 1:
            raise BadInput(f"{vault_path.name} is a version 1 vault: its recipients are bound into the body, "
                           "so it must be re-encrypted (see docs/vault-format.md, upgrading version 1)")
        data_key = old.unwrap(identity)
        # The body must belong to this header: segment 0 and the last one authenticate here.
        VaultReader(source, identity, torn_tail_ok=True).close()
        new = old.rewrapped(data_key, add=add, remove=remove, allow_mixed=allow_mixed)
        with create_atomically(vault_path, overwrite=True) as out:
            out.write(new.encode())
            source.seek(old.length)
            shutil.copyfileobj(source, out, COPY_CHUNK)
    return old, new
