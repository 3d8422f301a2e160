"""The S3 connection: a boto3 low-level client built from ArchiveSettings, and what a failure
means for the archive: refused (permanent until someone fixes the configuration or the bucket)
or unavailable (transient: try again later).

botocore's own retries are off: the uploader retries with its own backoff, so every attempt
is seen, counted and paced. botocore's automatic request checksums are off too: the uploader
sends Content-MD5 and x-amz-checksum-sha256 it computed itself, from the bytes it read once.
The secret key is read from the credentials file here and handed to botocore only; it is never
logged and never part of a message.
"""

from __future__ import annotations

import configparser
import stat

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, HTTPClientError

from appliance.archive.settings import ArchiveSettings
from appliance.errors import ApplianceError, BadInput

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
# Codes that say "not now" rather than "never": the request may well succeed when repeated.
# BadDigest and friends: the bytes changed on the way, so the server refused them; send again.
TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                   "ServiceUnavailable", "InternalError", "RequestTimeTooSkewed", "BadDigest",
                   "XAmzContentSHA256Mismatch", "InvalidDigest", "IncompleteBody"}
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                    "InvalidToken", "ExpiredToken"}


class ArchiveError(ApplianceError):
    """The archive could not do what was asked; one line, no secret in it."""

    exit_code = 1


class ArchiveRefused(ArchiveError):
    """Permanent until a person acts: bad credentials, unknown bucket, no Object Lock, an object
    at our key that is not ours."""


class ArchiveMisconfigured(ArchiveRefused, BadInput):
    """The appliance's own side is unusable (the credentials file missing, unreadable, readable
    by others or malformed; no archive set): bad input, exit 2, so the unit stays stopped instead
    of restarting into the same line. A refusal by the server stays ArchiveRefused (exit 1)."""

    exit_code = BadInput.exit_code


class ArchiveUnavailable(ArchiveError):
    """Transient: network down, server error, throttling, bytes damaged in transit."""


CREDENTIALS_SECTION = "default"
CREDENTIALS_KEYS = ("aws_access_key_id", "aws_secret_access_key")


def read_credentials(settings: ArchiveSettings) -> tuple[str, str]:
    """(access key, secret key) from the credentials file: an AWS-style shared credentials file
    (INI, a `[default]` section with `aws_access_key_id` and `aws_secret_access_key`), readable
    by its owner only. A message names the file, a line number or a key, never a value."""
    path = settings.credentials
    if path is None:
        raise ArchiveMisconfigured("archive: archive.credentials is not set")
    # No interpolation: a secret may hold "%".
    document = configparser.ConfigParser(interpolation=None)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ArchiveMisconfigured(f"archive: credentials file {path} must be readable by its owner "
                                 f"only (mode 0600), it is {stat.S_IMODE(mode):04o}")
        document.read_string(path.read_text(encoding="utf-8-sig"))   # a BOM: saved by Notepad
    except OSError as error:
        raise ArchiveMisconfigured(f"archive: cannot read credentials file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ArchiveMisconfigured(f"archive: credentials file {path} is not UTF-8 text") from None
    except configparser.Error as error:   # its own message quotes the line: it may hold the secret
        raise ArchiveMisconfigured(f"archive: credentials file {path} is not an AWS-style INI credentials file "
                             f"({_where(error)})") from None
    if not document.has_section(CREDENTIALS_SECTION):
        raise ArchiveMisconfigured(f"archive: credentials file {path} has no [{CREDENTIALS_SECTION}] section")
    section = document[CREDENTIALS_SECTION]
    missing = [name for name in CREDENTIALS_KEYS if not section.get(name, "").strip()]
    if missing:
        raise ArchiveMisconfigured(f"archive: credentials file {path} lacks {' and '.join(missing)} "
                             f"in [{CREDENTIALS_SECTION}]")
    return section[CREDENTIALS_KEYS[0]].strip(), section[CREDENTIALS_KEYS[1]].strip()


def _where(error: configparser.Error) -> str:
    """Where the file went wrong, without the line itself."""
    if isinstance(error, configparser.MissingSectionHeaderError):
        return f"line {error.lineno}: no [section] header before it"
    if isinstance(error, configparser.ParsingError):
        return f"line {error.errors[0][0]}: not `key = value`"
    if isinstance(error, configparser.DuplicateSectionError):
        return f"line {error.lineno}: section [{error.section}] twice"
    if isinstance(error, configparser.DuplicateOptionError):
        return f"line {error.lineno}: {error.option} twice"
    return type(error).__name__


def connect(settings: ArchiveSettings):
    """A boto3 S3 client for the configured endpoint, without botocore retries."""
    if not settings.configured:
        raise ArchiveMisconfigured("archive: archive.endpoint is not set (no archive configured)")
    access_key, secret_key = read_credentials(settings)
    return boto3.client(
        "s3", endpoint_url=settings.endpoint, region_name=settings.region,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=CONNECT_TIMEOUT_S,
                      read_timeout=READ_TIMEOUT_S, max_pool_connections=8,
                      # The body is bound to the signature by the signed checksum headers we
                      # send; botocore would hash every byte a third time on plain http.
                      s3={"addressing_style": "path", "payload_signing_enabled": False},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def classify(error: Exception, doing: str) -> ArchiveError:
    """The archive's view of a botocore failure while `doing` something (words for the message)."""
    if isinstance(error, ArchiveError):
        return error
    if isinstance(error, (HTTPClientError, BotoConnectionError)):   # refused, reset, timed out, DNS
        return ArchiveUnavailable(f"archive: {doing}: cannot reach the server ({type(error).__name__})")
    if isinstance(error, ClientError):
        code = error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return ArchiveUnavailable(f"archive: {doing}: server said {code or status} (transient)")
        if code in CREDENTIAL_CODES:
            return ArchiveRefused(f"archive: {doing}: credentials refused ({code}); "
                                  f"check archive.credentials")
        if code in ("NoSuchBucket", "404") and "bucket" in doing:
            return ArchiveRefused(f"archive: {doing}: no such bucket")
        return ArchiveRefused(f"archive: {doing}: server refused ({code or status})")
    if isinstance(error, BotoCoreError):
        return ArchiveUnavailable(f"archive: {doing}: {type(error).__name__}")
    raise error


def check_bucket(client, settings: ArchiveSettings) -> None:
    """Refuses a bucket that does not exist, is not ours to write, or lacks Object Lock while
    retention is asked for (an object there could be deleted, so it would not be archived)."""
    doing = f"bucket {settings.bucket}"
    try:
        client.head_bucket(Bucket=settings.bucket)
        if settings.retention_days == 0:
            return
        configuration = client.get_object_lock_configuration(Bucket=settings.bucket)
    except ClientError as error:
        if error_code(error) == "ObjectLockConfigurationNotFoundError":
            raise ArchiveRefused(f"archive: bucket {settings.bucket} has no Object Lock; make it with "
                                 f"Object Lock enabled (or set archive.retention_days = 0)") from None
        raise classify(error, doing) from None
    except BotoCoreError as error:
        raise classify(error, doing) from None
    if configuration.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise ArchiveRefused(f"archive: bucket {settings.bucket} has no Object Lock enabled")
