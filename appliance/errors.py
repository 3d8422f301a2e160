"""Errors that cross module boundaries and map onto the CLI's exit codes.

0 ok, 1 integrity or verification failure, 2 bad input or usage. Messages are one line a
technician or clinic IT person can act on; they never contain key material or subject IDs.
"""


class ApplianceError(Exception):
    """Base class; `exit_code` is what the CLI returns for it."""

    exit_code = 2


class BadInput(ApplianceError):
    """The user gave something unusable: a missing file, a wrong passphrase, a bad option."""

    exit_code = 2


class IntegrityError(ApplianceError):
    """Data failed authentication or verification: tampering, truncation, a broken chain."""

    exit_code = 1
