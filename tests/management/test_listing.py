"""Sorting, columns and filters of kiltmq's lists beyond what the comparison covers
(RabbitMQ's statistics arrive late, so these run against kiltmq alone)."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from kiltmq.broker import Broker

from .api import Api, q


@pytest.fixture
def busy(kilt_broker: Broker, vhost: str) -> Iterator[BlockingChannel]:
    """Queues a, b, c with 2, 0 and 5 messages published to them."""
    conn = pika.BlockingConnection(pika.URLParameters(kilt_broker.url + q(vhost)))
    channel = conn.channel()
    for name, count in (("a", 2), ("b", 0), ("c", 5)):
        channel.queue_declare(name)
        for _ in range(count):
            channel.basic_publish("", name, b"x")
    channel.queue_declare("a", passive=True)  # a round trip: the publishes are in
    yield channel
    conn.close()


def test_sort_by_a_dotted_path_and_cut_nested_columns(
    kilt: Api, vhost: str, busy: BlockingChannel
) -> None:
    reply = kilt.get(
        f"/api/queues/{q(vhost)}?sort=message_stats.publish&sort_reverse=true"
        "&columns=name,message_stats.publish"
    )
    assert reply.body == [
        {"name": "c", "message_stats": {"publish": 5}},
        {"name": "a", "message_stats": {"publish": 2}},
        {"name": "b"},
    ]


def test_sort_by_messages_with_pages(kilt: Api, vhost: str, busy: BlockingChannel) -> None:
    reply = kilt.get(f"/api/queues/{q(vhost)}?sort=messages&page=2&page_size=2&columns=name")
    assert reply.body == {
        "filtered_count": 3, "item_count": 1, "items": [{"name": "c"}], "page": 2,
        "page_count": 2, "page_size": 2, "total_count": 3,
    }
