"""``kiltmq broker`` runs on uvloop when it is installed, unless told not to; a real
client is served on either loop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pika
import pytest

pytestmark = pytest.mark.timeout(60)


def _serve(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    """Start the broker, publish and get one message with pika, stop it: (its event
    loop as logged, everything it logged)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--memory-only", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        port = 0
        while not port and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"ready on \S+:(\d+)", line)
            port = int(found.group(1)) if found else 0
        assert port, "".join(lines)
        conn = pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/"))
        ch = conn.channel()
        ch.queue_declare("looped")
        ch.basic_publish("", "looped", b"round the loop")
        assert ch.basic_get("looped", auto_ack=True)[2] == b"round the loop"
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        lines.append(proc.stderr.read())
        proc.stderr.close()
    text = "".join(lines)
    found = re.search(r"event loop: (\w+)", text)
    assert found, text
    return found.group(1), text


def test_the_broker_serves_a_client_on_uvloop_by_default() -> None:
    pytest.importorskip("uvloop")
    assert _serve([], {"KILTMQ_UVLOOP": ""})[0] == "uvloop"


def test_the_broker_exempts_its_start_up_heap_from_garbage_collection() -> None:
    text = _serve([], {})[1]
    found = re.search(r"(\d+) start-up objects exempt from garbage collection", text)
    assert found, text
    assert int(found.group(1)) > 1000  # modules, classes, functions, tables


def test_no_uvloop_and_the_environment_choose_asyncio() -> None:
    assert _serve(["--no-uvloop"], {})[0] == "asyncio"
    assert _serve([], {"KILTMQ_UVLOOP": "0"})[0] == "asyncio"


def test_a_bad_environment_value_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--memory-only"],
        capture_output=True,
        text=True,
        env={**os.environ, "KILTMQ_UVLOOP": "maybe"},
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "kiltmq broker: KILTMQ_UVLOOP must be 0 or 1, not 'maybe'"
    )
