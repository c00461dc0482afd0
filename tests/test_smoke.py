"""Smoke tests: the package imports, the CLI runs, RabbitMQ speaks AMQP."""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

import kiltmq
from kiltmq.cli.main import main
from kiltmq.protocol.spec import FRAME_END, FRAME_METHOD, PROTOCOL_HEADER


def test_version_matches_the_installed_distribution() -> None:
    assert kiltmq.__version__ == importlib.metadata.version("kiltmq")


def test_cli_version_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kiltmq {kiltmq.__version__}"


def test_cli_without_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: kiltmq" in capsys.readouterr().out


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.rabbitmq
def test_rabbitmq_answers_protocol_header(rabbitmq_url: str) -> None:
    parts = urlsplit(rabbitmq_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.settimeout(10)
        sock.sendall(PROTOCOL_HEADER)
        header = _recv_exactly(sock, 7)
        assert len(header) == 7, f"short reply: {header!r}"
        frame_type = header[0]
        channel = int.from_bytes(header[1:3], "big")
        size = int.from_bytes(header[3:7], "big")
        assert frame_type == FRAME_METHOD, f"expected a method frame, got {header!r}"
        assert channel == 0
        payload = _recv_exactly(sock, size + 1)
        assert len(payload) == size + 1
        assert payload[-1] == FRAME_END
        # connection.start is class 10, method 10, then version-major 0, version-minor 9.
        assert payload[:4] == b"\x00\x0a\x00\x0a"
        assert payload[4:6] == b"\x00\x09"
