"""An AMQP 0-8 client and an AMQP 0-9-1 client sharing a queue, against kiltmq and RabbitMQ.

txAMQP speaks 0-8 with the 0-8 spec XML (``txamqp_spec.py``), in a subprocess as in
``test_txamqp.py``; pika speaks 0-9-1 in this process. Each direction: one client
publishes three messages with properties, the other consumes them and checks bodies and
properties, so the message crosses from one dialect's tables to the other's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from .conftest import Names
from .test_pika_blocking import connect
from .test_txamqp import RUN_TIMEOUT, SCRIPT
from .txamqp_spec import write_spec

# txamqp_scenarios.SHARED_BODIES (not imported: that module installs Twisted's reactor).
SHARED_BODIES = ("first", "second", "third")


@pytest.fixture(scope="module")
def spec08_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AMQP 0-8 spec XML for txAMQP, written from kiltmq.protocol.spec08."""
    return write_spec(tmp_path_factory.mktemp("txamqp") / "amqp0-8.xml", amqp_0_8=True)


def run_txamqp(url: str, spec: Path, scenario: str, queue: str) -> None:
    """Run one txAMQP scenario on ``queue``; fail with its traceback if it failed."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), url, str(spec), f"{scenario}={queue}"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, (
        f"txAMQP did not run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    result = json.loads(lines[-1])[scenario]
    assert result["ok"], f"txAMQP {scenario} failed:\n{result['error']}"


def test_txamqp_0_8_producer_pika_consumer(
    broker_url: str, spec08_path: Path, names: Names
) -> None:
    q = names.q("from-0-8")
    conn = connect(broker_url)
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        run_txamqp(broker_url, spec08_path, "publish_to_shared_queue", q)
        assert ch.queue_declare(q, passive=True).method.message_count == len(SHARED_BODIES)
        got: list[tuple[bytes, pika.BasicProperties]] = []
        for method, props, body in ch.consume(q, inactivity_timeout=10):
            assert method is not None, f"timed out after {len(got)} messages"
            assert not method.redelivered
            got.append((body, props))
            ch.basic_ack(method.delivery_tag)
            if len(got) == len(SHARED_BODIES):
                break
        ch.cancel()
    finally:
        conn.close()
    assert [body for body, _ in got] == [b.encode() for b in SHARED_BODIES]
    for i, (_, props) in enumerate(got):
        assert props.content_type == "text/plain"
        assert props.delivery_mode == 2
        assert props.message_id == f"m{i}"
        assert props.headers == {"n": i, "from": "txamqp"}


def test_pika_producer_txamqp_0_8_consumer(
    broker_url: str, spec08_path: Path, names: Names
) -> None:
    q = names.q("to-0-8")
    conn = connect(broker_url)
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        ch.confirm_delivery()
        for i, body in enumerate(SHARED_BODIES):
            props = pika.BasicProperties(
                content_type="text/plain",
                delivery_mode=2,
                message_id=f"m{i}",
                headers={"n": i, "from": "pika"},
            )
            ch.basic_publish("", q, body.encode(), props)
        run_txamqp(broker_url, spec08_path, "consume_from_shared_queue", q)
        assert ch.queue_declare(q, passive=True).method.message_count == 0
    finally:
        conn.close()
