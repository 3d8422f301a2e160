"""`appliance vault encrypt|info|verify|decrypt|rewrap|mark-interrupted`.

Exit codes: 0 ok, 1 integrity failure (tampered, cut, unsigned), 2 bad input. Files are
created atomically (temp + rename in the destination directory, 0600): a failed command
leaves nothing behind, in particular no partial plaintext. An interrupted recording (an MP4
whose stream has no last segment) decrypts to its last complete fragment, so it plays to the end.
A recording whose signed manifest holds controller events decrypts with them as a subtitle
track (appliance/recording/subtitles.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COPY_CHUNK = 1 << 20


def register(subparsers) -> None:
    parser = subparsers.add_parser("vault", help="encrypt, inspect, verify and decrypt recording vaults")
    actions = parser.add_subparsers(dest="vault_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True

    encrypt = actions.add_parser("encrypt", help="encrypt a file into a new vault")
    encrypt.add_argument("input", type=Path)
    encrypt.add_argument("-o", "--output", type=Path, required=True)
    encrypt.add_argument("--recipient", type=Path, action="append", required=True,
                         help="recipient public key (repeat for escrow)")
    encrypt.add_argument("--allow-mixed", action="store_true",
                         help="allow post-quantum (xwing) and classical (p256) recipients in one file")
    encrypt.add_argument("--device-key", type=Path, help="sign a sealed manifest with this device key")
    encrypt.set_defaults(func=_encrypt)

    info = actions.add_parser("info", help="show a vault's header and manifest (no secret needed)")
    info.add_argument("file", type=Path)
    info.add_argument("--json", action="store_true",
                      help="print header and signed manifest as JSON, the treatment timeline under \"events\"")
    info.set_defaults(func=_info)

    verify = actions.add_parser("verify", help="check the signed manifest against the file (exit 1 if not)")
    verify.add_argument("file", type=Path)
    verify.add_argument("--device-pub", type=Path, help="require this device's signature")
    verify.set_defaults(func=_verify)

    decrypt = actions.add_parser("decrypt", help="decrypt a vault with a recipient key")
    decrypt.add_argument("file", type=Path)
    decrypt.add_argument("--identity", type=Path, required=True, help="recipient private key")
    decrypt.add_argument("--passphrase-file", type=Path, help="read the passphrase from this file (default: prompt)")
    decrypt.add_argument("-o", "--output", help="output file, or - for stdout")
    decrypt.add_argument("--identity-card", type=Path, metavar="FILE",
                         help="also write the recording's sealed identity card (patient, study) as JSON")
    decrypt.set_defaults(func=_decrypt)

    rewrap = actions.add_parser("rewrap", help="add or remove recipients of a version 2 vault; the body "
                                "stays byte-identical and its manifest valid")
    rewrap.add_argument("file", type=Path)
    rewrap.add_argument("--identity", type=Path, required=True, help="a current recipient's private key")
    rewrap.add_argument("--passphrase-file", type=Path, help="read the passphrase from this file (default: prompt)")
    rewrap.add_argument("--add-recipient", type=Path, action="append", default=[], metavar="PUB",
                        help="recipient public key to add (repeatable)")
    rewrap.add_argument("--remove-recipient", action="append", default=[], metavar="KEYID",
                        help="16-hex key id to remove, as `vault info` lists it (repeatable)")
    rewrap.add_argument("--allow-mixed", action="store_true",
                        help="allow post-quantum (xwing) and classical (p256) recipients in one file")
    rewrap.set_defaults(func=_rewrap)

    mark = actions.add_parser("mark-interrupted",
                              help="sign a vault whose writer never closed as interrupted (no recipient key needed)")
    mark.add_argument("file", type=Path)
    mark.add_argument("--device-key", type=Path, required=True)
    mark.set_defaults(func=_mark_interrupted)


def _open_input(path: Path):
    from appliance.errors import BadInput

    if str(path) == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BadInput(f"input {path} does not exist") from None
    except OSError as error:
        raise BadInput(f"cannot read input {path}: {error.strerror}") from None


def _encrypt(args) -> int:
    from appliance import vault
    from appliance.errors import BadInput
    from appliance.atomic import create_atomically

    recipients = [vault.keys.load_recipient_public(path) for path in args.recipient]
    vault.recipients.check_mix([vault.kind_of(key) for key in recipients], args.allow_mixed)
    device_key = vault.keys.load_device_key(args.device_key) if args.device_key else None
    if args.output.exists():
        raise BadInput(f"{args.output} already exists; refusing to overwrite it")
    source = _open_input(args.input)
    try:
        with create_atomically(args.output) as out:
            writer = vault.encrypt(out, recipients, allow_mixed=args.allow_mixed)
            while chunk := _read_input(source, args.input):
                writer.write(chunk)
            sealed = writer.close()
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    print(f"sealed {args.output}: {sealed.plaintext_length} bytes in {sealed.segments} segments, "
          f"recording id {sealed.recording_id}")
    if device_key is not None:
        manifest = vault.write_manifest(args.output, device_key, state="sealed", sealed=sealed)
        print(f"signed {manifest}")
    return 0


def _read_input(source, path: Path) -> bytes:
    from appliance.errors import BadInput

    try:
        return source.read(COPY_CHUNK)
    except OSError as error:
        raise BadInput(f"cannot read input {path}: {error.strerror}") from None


def _info(args) -> int:
    from appliance.vault import header as vault_header
    from appliance.vault import manifest, signing, stream

    with vault_header.open_vault(args.file) as source:
        header = vault_header.read_header(source.read)
        size = source.seek(0, 2)
    stream_length = size - header.length
    signed, public, problem = manifest.read_manifest(args.file)
    if args.json:
        _print_info_json(args.file, header, size, stream.segment_count(stream_length), signed, problem)
        return 0
    print(f"vault: {args.file}")
    print(f"version: {header.version}")
    print(f"recording id: {header.recording_id.hex()}")
    print(f"header: {header.length} bytes")
    print(f"recipients: {len(header.stanzas)}")
    for stanza in header.stanzas:
        print(f"  {stanza.kind} {stanza.key_id.hex()}")
    print(f"ciphertext: {size} bytes, {stream.segment_count(stream_length)} segments of {header.segment_size}")
    if signed is None:
        print(f"manifest: {problem}")
    else:
        print(f"manifest: {signed['state']}, signed {signed['signed_at']} by device {signed['device_key_id']} "
              f"({signing.describe(public)})")
        for key, value in sorted(signed["metadata"].items()):
            if key == "identity_card":   # ciphertext: its size says more than its base64
                value = f"sealed, {len(value)} base64 characters (vault decrypt --identity-card FILE opens it)"
            print(f"  {key}: {value}")
    return 0


def _print_info_json(path: Path, header, size: int, segments: int, signed: dict | None, problem: str | None) -> None:
    """Only a manifest whose signature holds is printed; its events are the treatment timeline
    (docs/vault-format.md), [] for a clip without any or without a valid manifest."""
    from appliance import timeline
    from appliance.errors import BadInput

    try:
        events = timeline.events_from_manifest(signed["metadata"]) if signed else []
    except ValueError as error:
        raise BadInput(f"vault {path}: the signed manifest's timeline is not readable: {error}") from None
    print(json.dumps({
        "vault": str(path),
        "header": {"version": header.version, "recording_id": header.recording_id.hex(),
                   "recipients": [stanza.key_id.hex() for stanza in header.stanzas],
                   "segment_size": header.segment_size, "ciphertext_bytes": size, "segments": segments},
        "manifest": signed, "manifest_problem": problem,
        "events": [event.as_dict() for event in events],
    }, indent=2, sort_keys=True))


def _verify(args) -> int:
    from appliance import vault

    device_public = vault.keys.load_device_public(args.device_pub) if args.device_pub else None
    result = vault.verify(args.file, device_public)
    if not result.ok:
        print(f"FAILED {args.file}: {result.problem}", file=sys.stderr)
        return 1
    pinned = "the given device key" if result.device_pinned else \
        f"device {result.device_key_id} (embedded key; pass --device-pub to pin it)"
    print(f"OK {args.file}: {result.state}, {result.ciphertext_length} bytes, signed by {pinned}, "
          f"{result.signature}")
    if result.note:
        print(f"note: {result.note}")
    return 0


def _rewrap(args) -> int:
    from appliance import vault
    from appliance.commands import passphrase
    from appliance.errors import BadInput

    removed = []
    for text in args.remove_recipient:
        try:
            removed.append(bytes.fromhex(text))
        except ValueError:
            removed.append(b"")
        if len(removed[-1]) != 8:
            raise BadInput(f"--remove-recipient wants a 16-hex key id as `vault info` lists it, not {text!r}")
    added = [vault.keys.load_recipient_public(path) for path in args.add_recipient]
    if not added and not removed:
        raise BadInput("give --add-recipient PUB and/or --remove-recipient KEYID")
    identity = vault.keys.load_identity(args.identity, passphrase.obtain(args.passphrase_file))
    old, new = vault.rewrap(args.file, identity, add=added, remove=removed, allow_mixed=args.allow_mixed)

    def listed(header) -> str:
        return ", ".join(f"{s.kind} {s.key_id.hex()}" for s in header.stanzas)
    print(f"rewrapped {args.file}: recipients {listed(old)} -> {listed(new)}; body unchanged")
    return 0


def _decrypt(args) -> int:
    from appliance import vault
    from appliance.commands import passphrase
    from appliance.errors import BadInput, IntegrityError
    from appliance.vault import manifest
    from appliance.atomic import create_atomically

    if args.output is None and args.identity_card is None:
        raise BadInput("say where to write: -o FILE (or - for stdout) and/or --identity-card FILE")
    to_stdout = args.output == "-"
    output = None if to_stdout or args.output is None else Path(args.output)
    for target in (output, args.identity_card):
        if target is not None and target.exists():
            raise BadInput(f"{target} already exists; refusing to overwrite it")
    if not args.file.is_file():
        raise BadInput(f"vault {args.file} does not exist" if not args.file.exists()
                       else f"{args.file} is not a file")
    identity = vault.keys.load_identity(args.identity, passphrase.obtain(args.passphrase_file))
    signed, problem = manifest.read_signed(args.file)
    if signed is None and args.file.with_name(args.file.name + ".manifest").exists():
        raise IntegrityError(problem)
    card = _identity_card(signed, identity) if args.identity_card else None
    if args.output is None:
        return _write_card(args.identity_card, card)
    events = _timeline_events(signed)
    timeline = ""
    reader = vault.open_reader(args.file, identity)
    try:
        state = _decryptable_state(reader, signed)
        torn_fragment_bytes = 0
        if not reader.finalized:
            from appliance.recording.fmp4 import end_at_last_fragment

            # A torn last fragment makes decoders fail at the end; the video stops one fragment earlier.
            torn_fragment_bytes = end_at_last_fragment(reader)
        if to_stdout:
            # A pipe cannot be taken back: authenticate every segment before the first byte goes out.
            _copy(reader, _Discard())
            reader.seek(0)
            _copy(reader, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with create_atomically(output) as out:
                if events:
                    from appliance.recording.subtitles import remux_with_cues

                    timeline = f", with {len(remux_with_cues(reader, out, events))} timeline cues"
                else:
                    _copy(reader, out)
    finally:
        reader.close()
    where = "stdout" if to_stdout else output
    if events and to_stdout:
        print("the timeline track needs a file (-o FILE): stdout has the recording as recorded", file=sys.stderr)
    if state == "interrupted":
        ending = "" if reader.finalized else " (the end was never written)"
        if torn_fragment_bytes:
            ending = (f" (the end was never written; ends at its last complete video fragment, "
                      f"{torn_fragment_bytes} bytes of a torn fragment left out)")
        print(f"INTERRUPTED recording: wrote its authenticated prefix, {reader.plaintext_length} bytes, "
              f"to {where}{timeline}{ending}", file=sys.stderr)
    else:
        print(f"decrypted {reader.plaintext_length} bytes to {where}{timeline}", file=sys.stderr)
    return _write_card(args.identity_card, card) if card is not None else 0


def _identity_card(signed: dict | None, identity) -> dict:
    """The recording's identity card, opened before any output is written (refused: nothing is)."""
    from appliance.errors import BadInput
    from appliance.vault import identity_card

    card = identity_card.open_card(signed, identity) if signed else None
    if card is None:
        raise BadInput("this recording carries no identity card (no signed manifest, or recorded before "
                       "identity cards)")
    return card


def _write_card(path: Path, card: dict) -> int:
    from appliance.atomic import write_atomically

    text = json.dumps(card, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_atomically(path, text.encode("utf-8"))
    print(f"wrote the identity card to {path}", file=sys.stderr)
    return 0


def _timeline_events(signed: dict | None) -> list:
    """The controller events the signed manifest holds; the decrypted MP4 shows them as subtitles."""
    from appliance.errors import IntegrityError
    from appliance.timeline import events_from_manifest

    try:
        return events_from_manifest(signed["metadata"]) if signed else []
    except ValueError as error:
        raise IntegrityError(f"the manifest's events are unreadable: {error}") from None


def _decryptable_state(reader, signed: dict | None) -> str:
    """Decides whether this plaintext may be released, and as what."""
    from appliance.errors import IntegrityError

    state = signed["state"] if signed else None
    if state == "interrupted":
        return state
    if not reader.finalized:  # a sealed manifest with a cut stream was refused by open_reader
        raise IntegrityError("the stream has no last segment (cut or interrupted) and no manifest says "
                             "interrupted; run `appliance vault mark-interrupted` on the appliance")
    return state or "unsigned"


class _Discard:
    def write(self, data) -> int:
        return len(data)


def _copy(reader, out) -> None:
    while chunk := reader.read(COPY_CHUNK):
        out.write(chunk)


def _mark_interrupted(args) -> int:
    from appliance import vault

    device_key = vault.keys.load_device_key(args.device_key)
    result = vault.mark_interrupted(args.file, device_key)
    print(f"marked {args.file} interrupted: {result.ciphertext_length} bytes, {result.segments} segments, signed")
    return 0
