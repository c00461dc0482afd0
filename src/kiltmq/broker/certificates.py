"""When X.509 certificates expire, read from PEM text with the standard library only:
each certificate's DER is walked as far as its validity (RFC 5280: Certificate ->
tbsCertificate -> [version], serialNumber, signature, issuer, validity -> notAfter)."""

from __future__ import annotations

import base64
import binascii
import calendar
import re
import time

__all__ = ["certificate_ends"]

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_VERSION = 0xA0


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start, end) of the content of the DER element at ``at``."""
    tag = der[at]
    length = der[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[at:at + count], "big")
        at += count
    if at + length > len(der):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _not_after(der: bytes) -> float:
    _, certificate, _ = _element(der, 0)
    _, at, _ = _element(der, certificate)  # tbsCertificate's content
    tag, _, end = _element(der, at)
    if tag == _EXPLICIT_VERSION:
        at = end
    for _ in range(3):  # serialNumber, signature, issuer
        _, _, at = _element(der, at)
    _, validity, _ = _element(der, at)
    _, _, at = _element(der, validity)  # notBefore
    tag, start, end = _element(der, at)
    text = der[start:end].decode("ascii")
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ: years 1950 to 2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError("no validity time")
    return float(calendar.timegm(time.strptime(text[:14], "%Y%m%d%H%M%S")))


def certificate_ends(pem: str) -> list[float]:
    """When (seconds since the epoch) each certificate in ``pem`` stops being valid, in
    file order; those that cannot be read are left out."""
    ends = []
    for block in _PEM.findall(pem):
        try:
            ends.append(_not_after(base64.b64decode("".join(block.split()))))
        except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
            continue
    return ends
