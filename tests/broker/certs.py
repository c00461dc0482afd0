"""Test certificates made with the openssl command: a CA, a server certificate for
localhost / 127.0.0.1 and client certificates signed by it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


class CertificateAuthority:
    """A self-signed CA in ``directory`` that signs server and client certificates."""

    def __init__(self, directory: Path, name: str = "kiltmq test CA") -> None:
        if shutil.which("openssl") is None:
            pytest.skip("openssl is needed to make test certificates")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.cert = directory / "ca.pem"
        self.key = directory / "ca.key"
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", self.key, "-out", self.cert, "-subj", f"/CN={name}",
        )  # fmt: skip
        self._serial = 0

    def issue(self, name: str, subject: str, *, server: bool = False) -> KeyPair:
        """A certificate for ``subject`` (openssl's ``/C=../CN=..`` form) signed by this CA."""
        self._serial += 1
        key, csr = self.directory / f"{name}.key", self.directory / f"{name}.csr"
        cert, ext = self.directory / f"{name}.pem", self.directory / f"{name}.ext"
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", subject)  # fmt: skip
        usage = "serverAuth" if server else "clientAuth"
        lines = [f"extendedKeyUsage={usage}", "basicConstraints=CA:FALSE"]
        if server:
            lines.append("subjectAltName=DNS:localhost,IP:127.0.0.1")
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
            "-set_serial", str(self._serial), "-days", "2", "-out", cert, "-extfile", ext,
        )  # fmt: skip
        return KeyPair(cert, key)
