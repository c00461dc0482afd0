"""``kiltmq broker`` with an amqps listener (options and the [tls] table), and ``kiltmq
publish`` / ``consume`` over amqps with a client certificate and SASL EXTERNAL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiltmq.broker.config import ConfigError, load_config, parse_config

from .certs import CertificateAuthority, KeyPair

pytestmark = pytest.mark.timeout(90)


def _start(*args: str) -> tuple[subprocess.Popen[str], int, int]:
    """A ``kiltmq broker`` process and its plain and amqps ports."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--memory-only", "--no-ctl-socket", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"ready on \S+:(\d+), \S+:(\d+) \(amqps\)", line)
        if found:
            return proc, int(found.group(1)), int(found.group(2))
    proc.kill()
    raise AssertionError(f"the broker did not start: {''.join(lines)}")


def _run(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AMQP_URL"}
    return subprocess.run(
        [sys.executable, "-m", "kiltmq", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertificateAuthority, KeyPair, KeyPair]:
    ca = CertificateAuthority(tmp_path_factory.mktemp("cli-pki"))
    return ca, ca.issue("server", "/CN=localhost", server=True), ca.issue("guest", "/CN=guest")


def test_publish_and_consume_over_amqps_with_external(
    pki: tuple[CertificateAuthority, KeyPair, KeyPair],
) -> None:
    ca, server, client = pki
    proc, _, tls_port = _start(
        "--port", "0", "--tls-port", "0", "--tls-cert", str(server.cert),
        "--tls-key", str(server.key), "--tls-ca", str(ca.cert),
        "--tls-login-from", "common_name",
    )  # fmt: skip
    try:
        url = (
            f"amqps://localhost:{tls_port}/?cacertfile={ca.cert}&certfile={client.cert}"
            f"&keyfile={client.key}&auth_mechanism=external"
        )
        published = _run("publish", "--queue", "tls-cli", "over", "TLS", url=url)
        assert published.returncode == 0, published.stderr
        consumed = _run("consume", "--queue", "tls-cli", "--count", "1", url=url)
        assert consumed.returncode == 0, consumed.stderr
        assert consumed.stdout.splitlines() == ["over TLS"]
        untrusted = _run("publish", "x", url=f"amqps://guest:guest@localhost:{tls_port}/")
        assert untrusted.returncode != 0
        assert len(untrusted.stderr.strip().splitlines()) == 1
        assert "certificate" in untrusted.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_tls_table_in_the_config(
    tmp_path: Path, pki: tuple[CertificateAuthority, KeyPair, KeyPair]
) -> None:
    ca, server, _ = pki
    config = tmp_path / "broker.toml"
    config.write_text(
        "max_connections = 10\n[tls]\nport = 0\n"
        f'cert = "{server.cert}"\nkey = "{server.key}"\nca = "{ca.cert.name}"\n'
        'verify = "required"\nlogin_from = "common_name"\n'
    )
    kwargs = load_config(config)
    assert kwargs["max_connections"] == 10
    assert kwargs["tls_port"] == 0
    assert kwargs["tls_cert"] == str(server.cert)
    assert kwargs["tls_ca"] == str(tmp_path / ca.cert.name)  # relative to the file
    assert (kwargs["tls_verify"], kwargs["tls_login_from"]) == ("required", "common_name")
    with pytest.raises(ConfigError, match="needs a cert"):
        parse_config({"tls": {"port": 5671}})
    with pytest.raises(ConfigError, match="unknown tls setting 'cafile'"):
        parse_config({"tls": {"cert": "c.pem", "cafile": "x"}})
    with pytest.raises(ConfigError, match="max_connections"):
        parse_config({"max_connections": 0})


def test_an_unreadable_certificate_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--memory-only", "--port", "0",
         "--tls-cert", str(tmp_path / "missing.pem")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"kiltmq broker: invalid configuration: cannot load TLS certificate "
        f"{tmp_path / 'missing.pem'}: No such file or directory"
    )
