"""``idle_since`` as RabbitMQ 3.10 shows it: on a queue and on a channel that did nothing
for a while (not on connections), as local time with milliseconds and the offset, gone
while they work. RabbitMQ's objects go idle about a second after their last activity;
kiltmq's when the sampler, which takes a sample every 5 s, saw their counters unchanged
between two samples."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from kiltmq.broker import Broker
from kiltmq.management.stats import Sampler

from .api import Api, q
from .conftest import unique

#: RabbitMQ's format (``calendar:system_time_to_rfc3339`` in milliseconds).
FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d|Z)$")


class Client:
    """A pika connection with a name of its own and one channel, and what the API shows
    of it, of its channel and of a queue it declared."""

    def __init__(self, api: Api, url: str) -> None:
        self.api = api
        self.name = unique("idle")
        params = pika.URLParameters(url)
        params.client_properties = {"connection_name": self.name}
        self.conn = pika.BlockingConnection(params)
        self.channel: BlockingChannel = self.conn.channel()
        self.channel.queue_declare(self.name, auto_delete=True)

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()

    def connection(self) -> dict[str, Any] | None:
        for item in self.api.get("/api/connections").body:
            if item.get("user_provided_name") == self.name:
                found: dict[str, Any] = item
                return found
        return None

    def channel_item(self) -> dict[str, Any] | None:
        conn = self.connection()
        if conn is None:
            return None
        channels = self.api.get(f"/api/connections/{q(conn['name'])}/channels").body
        return channels[0] if channels else None

    def queue(self) -> dict[str, Any]:
        item: dict[str, Any] = self.api.get(f"/api/queues/%2F/{q(self.name)}").body
        return item

    def seen(self) -> dict[str, Any]:
        """Whether each object shows ``idle_since``, and whether in RabbitMQ's format."""
        shown = {
            "queue": self.queue().get("idle_since"),
            "channel": (self.channel_item() or {}).get("idle_since"),
            "connection": (self.connection() or {}).get("idle_since"),
        }
        return {
            what: None if value is None else bool(FORMAT.match(value))
            for what, value in shown.items()
        }


@pytest.fixture
def rabbit_client(rabbit: Api, rabbitmq_url: str) -> Iterator[Client]:
    client = Client(rabbit, rabbitmq_url)
    yield client
    client.close()


@pytest.fixture
def kilt_client(kilt: Api, kilt_broker: Broker) -> Iterator[Client]:
    client = Client(kilt, kilt_broker.url)
    yield client
    client.close()


def _until(check: Callable[[], bool], what: str) -> None:
    """Wait for RabbitMQ's statistics (emitted every 5 s)."""
    deadline = time.monotonic() + 60
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"RabbitMQ never showed {what}")
        time.sleep(0.5)


@pytest.mark.rabbitmq
def test_idle_queues_and_channels_show_it_as_in_rabbitmq(
    sampler: Sampler, rabbit_client: Client, kilt_client: Client, kilt_broker: Broker
) -> None:
    _until(
        lambda: None not in (rabbit_client.seen()["queue"], rabbit_client.seen()["channel"]),
        "idle_since on the queue and the channel",
    )
    theirs = rabbit_client.seen()
    kilt_broker.call_in_loop(sampler.sample)
    kilt_broker.call_in_loop(sampler.sample)
    ours = kilt_client.seen()
    assert ours == theirs == {"queue": True, "channel": True, "connection": None}


def test_it_goes_while_they_work_and_comes_back_later(
    sampler: Sampler, kilt_client: Client, kilt_broker: Broker
) -> None:
    kilt_broker.call_in_loop(sampler.sample)
    assert "idle_since" not in kilt_client.queue()  # seen once: not known to be idle
    kilt_broker.call_in_loop(sampler.sample)
    before = kilt_client.queue()["idle_since"]
    assert kilt_client.channel_item()["idle_since"] == before  # type: ignore[index]

    kilt_client.channel.basic_publish("", kilt_client.name, b"work")
    kilt_client.channel.queue_declare(kilt_client.name, passive=True)  # the publish is in
    kilt_broker.call_in_loop(sampler.sample)
    assert "idle_since" not in kilt_client.queue()
    assert "idle_since" not in kilt_client.channel_item()  # type: ignore[operator]

    kilt_broker.call_in_loop(sampler.sample)
    after = kilt_client.queue()["idle_since"]
    assert after > before
    assert kilt_client.channel_item()["idle_since"] == after  # type: ignore[index]
    assert "idle_since" not in kilt_client.connection()  # type: ignore[operator]
    # Left out with the other statistics.
    assert "idle_since" not in kilt_client.api.get(
        f"/api/queues/%2F/{q(kilt_client.name)}?disable_stats=true"
    ).body
    listed = kilt_client.api.get(
        f"/api/queues/%2F?page=1&name={q(kilt_client.name)}&columns=name,idle_since"
    ).body["items"]
    assert listed == [{"name": kilt_client.name, "idle_since": after}]
