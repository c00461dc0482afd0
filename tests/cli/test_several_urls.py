"""``kiltmq publish`` and ``kiltmq consume`` with several broker URLs (a cluster's nodes),
against embedded kiltmq brokers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

import kiltmq.blocking
from kiltmq.broker import Broker

from .test_publish_consume import Consumer, _free_port, kiltmq_command


def _url(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/"


@pytest.fixture
def nodes() -> Iterator[list[Broker]]:
    """Two embedded brokers in threads; stopped at the end."""
    with Broker(port=0) as first, Broker(port=0) as second:
        yield [first, second]


def _consumer_count(url: str, queue: str) -> int:
    with kiltmq.blocking.connect(url) as conn:
        return conn.channel().queue_declare(queue, passive=True).consumer_count


def test_publish_and_consume_use_the_first_live_url(nodes: list[Broker]) -> None:
    queue = f"test.cli.q.{uuid.uuid4().hex[:8]}"
    dead = _url(_free_port())
    published = kiltmq_command(
        "publish", "--queue", queue, "--url", dead, "hello", url=nodes[1].url
    )
    assert published.returncode == 0, published.stderr
    host_list = f"amqp://guest:guest@127.0.0.1:{_free_port()},127.0.0.1:{nodes[1].port}/"
    consumed = kiltmq_command("consume", "--queue", queue, "--count", "1", url=host_list)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["hello"]


def test_every_url_down_is_one_line_naming_each() -> None:
    first, second = _free_port(), _free_port()
    result = kiltmq_command("consume", "--url", _url(first), url=_url(second))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f":{first}/" in result.stderr and f":{second}/" in result.stderr


def test_consume_moves_to_the_next_node(nodes: list[Broker]) -> None:
    first, second = nodes
    queue = f"test.cli.q.{uuid.uuid4().hex[:8]}"
    consumer = Consumer("--queue", queue, "--count", "2", "--url", first.url, url=second.url)
    try:
        with kiltmq.blocking.connect(first.url) as conn:
            conn.channel().basic_publish(b"from node 1", routing_key=queue)
        first.stop_thread()
        # the consumer declares its queue again on node 2 and consumes from it
        while True:
            try:
                if _consumer_count(second.url, queue) == 1:
                    break
            except kiltmq.NotFound:
                pass
            time.sleep(0.05)
        with kiltmq.blocking.connect(second.url) as conn:
            conn.channel().basic_publish(b"from node 2", routing_key=queue)
        assert consumer.output() == ["from node 1", "from node 2"]
    finally:
        consumer.kill()
