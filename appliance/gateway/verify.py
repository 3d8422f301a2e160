"""Whether a recording may go to PACS: its signed manifest holds, the file is exactly what was
signed (header, body digest, length), and the signer is an enrolled device; and, for a genuine
one, whether it can be filed to a patient (its identity card).

Enrolled devices are the `*.pub` files in `[gateway] devices` (what `appliance keys device`
writes beside the device key). A recording signed by any other key is refused, however valid
its signature: anyone can sign. Refusals are one line, for the audit trail and the operator.
Only the refusal for a key not enrolled can change: the verdict says so, and the enrolled keys'
fingerprint tells the caller when to look again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from appliance import vault
from appliance.errors import ApplianceError, BadInput
from appliance.vault import identity_card
from appliance.vault import manifest as vault_manifest

NO_CARD = ("it carries no identity card (recorded before worklist support), so nothing says which "
           "patient it belongs to: file it by hand (`appliance vault decrypt` with the recipient key, "
           "then the PACS's import under the patient)")


@dataclass(frozen=True)
class Verdict:
    problem: str | None           # None: genuine, may be delivered
    recording_id: str | None      # the vault header's recording id (hex)
    signed: dict | None = None    # the manifest's verified signed fields
    awaits_enrolment: bool = False   # refused only because its signer is not enrolled (yet)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def interrupted(self) -> bool:
        return bool(self.signed) and self.signed.get("state") == "interrupted"


def enrolled_devices(directory: Path) -> list:
    """The enrolled device public keys; a file that is not one is a configuration error."""
    return [vault.keys.load_device_public(path) for path in sorted(Path(directory).glob("*.pub"))]


def enrolment_fingerprint(devices: list) -> str:
    """Changes when a device key is enrolled or withdrawn (the keys themselves, not file names)."""
    keys = sorted(json.dumps({algorithm: der.hex() for algorithm, der in device.der_by_algorithm().items()},
                             sort_keys=True) for device in devices)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def verify_recording(vault_path: Path, devices: list) -> Verdict:
    try:
        verification = vault.verify(vault_path)
    except ApplianceError as error:   # the header does not parse: not a vault
        return Verdict(f"not a readable vault: {error}", None)
    if not verification.ok:
        return Verdict(verification.problem, verification.recording_id)
    signed, signer, problem = vault_manifest.read_manifest(vault_path)
    if signed is None:   # replaced between the two reads
        return Verdict(problem, verification.recording_id)
    if not signer_enrolled(signer, devices):
        return Verdict(f"signed by device key {verification.device_key_id}, which is not enrolled "
                       f"(once its device.pub is in the devices directory, the next pass delivers it)",
                       verification.recording_id, awaits_enrolment=True)
    # Another genuine recording under this one's name would be filed as itself, but this name
    # would then count as delivered while its own recording never was.
    if signed.get("vault_name", vault_path.name) != vault_path.name:
        return Verdict(f"the manifest was signed for {signed['vault_name']}, not {vault_path.name}",
                       verification.recording_id)
    return Verdict(None, verification.recording_id, signed)


def filing_problem(signed: dict) -> str | None:
    """Why a genuine recording cannot be filed to a patient (no secret needed): it has no
    identity card, or one moved from another recording. Signed as it is: no pass changes that."""
    if (signed.get("metadata") or {}).get(identity_card.METADATA_KEY) is None:
        return NO_CARD
    return identity_card.binding_problem(signed)


def signer_enrolled(signer, devices: list) -> bool:
    """Whether the key that signed a manifest (or status) is one of the enrolled devices."""
    return any(_same_device(device, signer) for device in devices)


def _same_device(enrolled, signer) -> bool:
    """Every key of the enrolled device signed (a hybrid enrolment needs both signatures)."""
    try:
        return enrolled.der_by_algorithm().items() <= signer.der_by_algorithm().items()
    except (AttributeError, BadInput):
        return False
