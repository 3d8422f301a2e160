"""The few DER (X.690) structures the key files need: PKCS#8, SubjectPublicKeyInfo and PBES2
parameters. Encoding builds them; `parse` reads one TLV at a time and refuses anything that is
not minimal definite-length DER, so a key file is either understood exactly or rejected."""

from __future__ import annotations

SEQUENCE, INTEGER, BIT_STRING, OCTET_STRING, NULL, OID = 0x30, 0x02, 0x03, 0x04, 0x05, 0x06


def encode(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        encoded_length = bytes([length])
    else:
        raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
        encoded_length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + encoded_length + content


def sequence(*items: bytes) -> bytes:
    return encode(SEQUENCE, b"".join(items))


def octet_string(value: bytes) -> bytes:
    return encode(OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    return encode(BIT_STRING, b"\x00" + value)


def integer(value: int) -> bytes:
    return encode(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return encode(OID, bytes(body))


def parse(data: bytes, expected_tag: int) -> tuple[bytes, bytes]:
    """(content, rest) of the TLV at the start of `data`; ValueError unless it has that tag."""
    if len(data) < 2 or data[0] != expected_tag:
        raise ValueError("unexpected DER element")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(data) < 2 + count or data[2] == 0:
            raise ValueError("bad DER length")
        length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
        if length < 0x80:
            raise ValueError("non-minimal DER length")
    if len(data) < offset + length:
        raise ValueError("truncated DER element")
    return data[offset:offset + length], data[offset + length:]


def parse_sequence(data: bytes, *tags: int) -> list[bytes]:
    """The contents of a SEQUENCE made of exactly these element tags (whole TLVs for SEQUENCEs)."""
    content, rest = parse(data, SEQUENCE)
    if rest:
        raise ValueError("trailing bytes after DER sequence")
    items = []
    for tag in tags:
        if tag == SEQUENCE:
            inner, after = parse(content, SEQUENCE)
            items.append(content[:len(content) - len(after)])
        else:
            inner, after = parse(content, tag)
            items.append(inner)
        content = after
    if content:
        raise ValueError("unexpected extra DER elements")
    return items


def parse_integer(content: bytes) -> int:
    return int.from_bytes(content, "big", signed=True)


def oid_content(dotted: str) -> bytes:
    return parse(oid(dotted), OID)[0]
