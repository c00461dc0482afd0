"""When certificates expire, read by kiltmq.broker.certificates and by openssl."""

from __future__ import annotations

import calendar
import subprocess
import time
from pathlib import Path

import pytest

from kiltmq.broker.certificates import certificate_ends

from .certs import CertificateAuthority


def _openssl_end(cert: Path) -> float:
    out = subprocess.run(
        ["openssl", "x509", "-enddate", "-noout", "-in", str(cert)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # notAfter=Dec  9 22:43:22 2026 GMT
    text = " ".join(out.strip().split("=", 1)[1].split())
    return float(calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y %Z")))


@pytest.mark.parametrize("days", [2, 40000])  # UTCTime, and GeneralizedTime after 2049
def test_the_end_of_validity_is_openssls(tmp_path: Path, days: int) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    cert, key = tmp_path / "long.pem", tmp_path / "long.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=long"],
        check=True, capture_output=True, timeout=60,
    )
    issued = ca.issue("server", "/CN=localhost", server=True)
    assert certificate_ends(cert.read_text()) == [_openssl_end(cert)]
    both = issued.cert.read_text() + ca.cert.read_text()
    assert certificate_ends(both) == [_openssl_end(issued.cert), _openssl_end(ca.cert)]


def test_what_is_not_a_certificate_is_left_out() -> None:
    assert certificate_ends("") == []
    broken = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert certificate_ends(broken) == []
