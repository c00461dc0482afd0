"""``kiltmq broker`` and its configuration file."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from kiltmq.broker.config import ConfigError, load_config, parse_config

pytestmark = pytest.mark.timeout(60)

CONFIG = """
heartbeat = 30
vhosts = ["/", "shop"]

[[listeners]]
host = "127.0.0.1"
port = 0

[[users]]
name = "shop"
password = "kilts"
tags = ["administrator"]

[[permissions]]
user = "shop"
vhost = "shop"
"""


def _start(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"ready on \S+:(\d+)", line)
        if found:
            return proc, int(found.group(1))
    proc.kill()
    raise AssertionError(f"the broker did not start: {''.join(lines)}")


def test_broker_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(CONFIG)
    proc, port = _start("--config", str(config), "--memory-only")
    try:
        params = pika.URLParameters(f"amqp://shop:kilts@127.0.0.1:{port}/shop")
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.queue_declare("orders")
        ch.basic_publish("", "orders", b"one kilt")
        assert ch.basic_get("orders", auto_ack=True)[2] == b"one kilt"
        assert conn._impl.params.heartbeat == 30
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stderr is not None
        rest = proc.stderr.read()
        proc.stderr.close()
    assert "shutting down" in rest


def test_durable_queue_survives_a_restart_with_data_dir(tmp_path: Path) -> None:
    for round_ in range(2):
        proc, port = _start("--port", "0", "--data-dir", str(tmp_path))
        try:
            url = f"amqp://guest:guest@127.0.0.1:{port}/"
            conn = pika.BlockingConnection(pika.URLParameters(url))
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare("kept", durable=True)
            if round_ == 0:
                ch.basic_publish("", "kept", b"on disk", pika.BasicProperties(delivery_mode=2))
                ch.basic_publish("", "kept", b"in memory only")
            else:
                method, _props, body = ch.basic_get("kept", auto_ack=True)
                assert method is not None and body == b"on disk"
                assert ch.basic_get("kept")[0] is None
            conn.close()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            assert proc.stderr is not None
            proc.stderr.close()


def test_memory_only(tmp_path: Path) -> None:
    proc, _port = _start("--port", "0", "--memory-only")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert proc.stderr is not None
    proc.stderr.close()


def test_port_in_use_is_one_line_and_non_zero() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kiltmq", "broker", "--port", str(port), "--memory-only"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "INFO" not in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"kiltmq broker: cannot listen on 127.0.0.1:{port}")


def test_bad_config_is_one_line_and_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"users": [{"name": "x"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "kiltmq broker: user 'x' needs a password or a password_hash"


def test_config_formats(tmp_path: Path) -> None:
    toml_file = tmp_path / "c.toml"
    toml_file.write_text(CONFIG)
    from_toml = load_config(toml_file)
    assert from_toml["vhosts"] == ["/", "shop"]
    assert from_toml["listeners"] == [("127.0.0.1", 0)]
    assert from_toml["permissions"] == {"shop": {"shop": (".*", ".*", ".*")}}
    json_file = tmp_path / "c.json"
    json_file.write_text(
        json.dumps(
            {
                "vhosts": [{"name": "/"}],
                "users": [
                    {
                        "name": "r",
                        "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
                        "hashing_algorithm": "rabbit_password_hashing_sha256",
                        "tags": "administrator,monitoring",
                    }
                ],
            }
        )
    )
    from_json = load_config(json_file)
    assert from_json["users"][0].tags == frozenset({"administrator", "monitoring"})
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError):
        parse_config({"heartbeat": -1})
    with pytest.raises(ConfigError):
        parse_config({"listeners": [{"host": "x", "port": 70000}]})


def test_message_limits_in_the_config() -> None:
    limits = {"max_message_size": 1024, "content_timeout": 5}
    assert parse_config(limits) == {
        "max_message_size": 1024,
        "content_timeout": 5.0,
        "listeners": [],
    }
    with pytest.raises(ConfigError, match="content_timeout"):
        parse_config({"content_timeout": "soon"})
    with pytest.raises(ConfigError, match="max_message_size"):
        parse_config({"max_message_size": -1})


def test_a_max_message_size_over_512_mib_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--memory-only", "--port", "0",
         "--max-message-size", str(512 * 1024 * 1024 + 1)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "kiltmq broker: invalid configuration: max_message_size must be from 1 to "
        "536870912 bytes"
    )
