"""Sorting, columns and filters of kiltmq's lists beyond what the comparison covers
(RabbitMQ's statistics arrive late, so these run against kiltmq alone)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from kiltmq.broker import Broker
from kiltmq.broker.monitor import Monitor

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


@pytest.fixture
def many(kilt_broker: Broker, vhost: str) -> Iterator[BlockingChannel]:
    """Queues q00 to q29, queue qNN with NN % 7 messages."""
    conn = pika.BlockingConnection(pika.URLParameters(kilt_broker.url + q(vhost)))
    channel = conn.channel()
    for n in range(30):
        channel.queue_declare(f"q{n:02d}")
        for _ in range(n % 7):
            channel.basic_publish("", f"q{n:02d}", b"x")
    channel.queue_declare("q00", passive=True)
    yield channel
    conn.close()


def test_only_the_rows_of_the_page_are_built_in_full(
    kilt: Api, vhost: str, many: BlockingChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    real = Monitor._queue

    def counted(self: Monitor, queue: Any, unacked: list[int]) -> Any:
        built.append(queue.name)
        return real(self, queue, unacked)

    monkeypatch.setattr(Monitor, "_queue", counted)
    whole = kilt.get(f"/api/queues/{q(vhost)}?sort=messages&sort_reverse=true").body
    assert len(built) == 30
    for query in (
        "", "&sort=messages&sort_reverse=true", "&sort=message_stats.publish",
        "&sort=name&name=q1&use_regex=true", "&sort=durable",
    ):
        built.clear()
        page = kilt.get(f"/api/queues/{q(vhost)}?page=2&page_size=4{query}").body
        assert len(page["items"]) == 4
        # In full for the page; for sorting on a property, one column of every queue.
        assert len(built) == (34 if query.endswith("durable") else 4)
        if "messages" in query:
            assert page["items"] == whole[4:8]
    built.clear()
    names = kilt.get(f"/api/queues/{q(vhost)}?page=1&page_size=100&columns=name,messages")
    assert len(names.body["items"]) == 30 and built == []


def test_pages_agree_with_the_whole_list(kilt: Api, vhost: str, many: BlockingChannel) -> None:
    for query in (
        "sort=messages", "sort=messages&sort_reverse=true", "sort=name&sort_reverse=true",
        "sort=message_stats.publish_details.rate", "sort=arguments", "sort=",
    ):
        whole = kilt.get(f"/api/queues/{q(vhost)}?{query}&columns=name,messages").body
        pages = [
            kilt.get(f"/api/queues/{q(vhost)}?{query}&page={n}&page_size=7"
                     "&columns=name,messages").body
            for n in range(1, 6)
        ]
        assert [i for p in pages for i in p["items"]] == whole, query
        assert {(p["filtered_count"], p["total_count"], p["page_count"]) for p in pages} == {
            (30, 30, 5)
        }
    found = kilt.get(
        f"/api/queues/{q(vhost)}?page=1&name=^q2[0-4]$&use_regex=true&sort=messages"
        "&sort_reverse=true&columns=name,messages"
    ).body
    assert found["items"] == [
        {"name": "q20", "messages": 6}, {"name": "q24", "messages": 3},
        {"name": "q23", "messages": 2}, {"name": "q22", "messages": 1},
        {"name": "q21", "messages": 0},
    ]
    assert found["filtered_count"] == 5 and found["total_count"] == 30
