"""Dynamic shovels that move messages between the broker's queues (``shovel``
parameters, ``/api/shovels``): nothing is lost, messages keep their properties, and the
move goes on without the client that started it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pytest

from kiltmq.broker import Broker

from .api import Api, q

MANY = 1200  # more than one batch of a shovel


def _move(vhost: str, source: str, destination: str, **extra: Any) -> dict[str, Any]:
    uri = f"amqp:///{q(vhost)}"
    value = {
        "src-protocol": "amqp091", "src-uri": uri, "src-queue": source,
        "dest-protocol": "amqp091", "dest-uri": uri, "dest-queue": destination,
        "src-delete-after": "queue-length", "ack-mode": "on-confirm",
    }
    value.update(extra)
    return {"value": value}


@pytest.fixture
def channel(kilt_broker: Broker, vhost: str) -> Iterator[Any]:
    url = f"amqp://guest:guest@127.0.0.1:{kilt_broker.port}/{q(vhost)}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield conn.channel()
    finally:
        conn.close()


def _fill(channel: Any, queue: str, count: int, *, durable: bool = False) -> None:
    channel.queue_declare(queue, durable=durable)
    for i in range(count):
        props = pika.BasicProperties(
            delivery_mode=2, content_type="text/plain", headers={"n": i, "tag": "moved"},
        )
        channel.basic_publish("", queue, f"m{i}".encode(), props)
    assert channel.queue_declare(queue, passive=True).method.message_count == count


def _wait_gone(api: Api, vhost: str, name: str) -> None:
    """Until the shovel's parameter is gone (it goes when all messages have moved)."""
    path = f"/api/parameters/shovel/{q(vhost)}/{q(name)}"
    for _ in range(10_000):
        if api.get(path).status == 404:
            return
    raise AssertionError("the shovel did not finish")


def _messages(api: Api, vhost: str, queue: str) -> int:
    count: int = api.get(f"/api/queues/{q(vhost)}/{q(queue)}").body["messages"]
    return count


def test_move_keeps_properties_headers_and_order(kilt: Api, vhost: str, channel: Any) -> None:
    _fill(channel, "from", 3)
    channel.queue_declare("to")
    reply = kilt.put(f"/api/parameters/shovel/{q(vhost)}/mv", _move(vhost, "from", "to"))
    assert reply.status == 201, reply.text
    _wait_gone(kilt, vhost, "mv")
    assert channel.queue_declare("from", passive=True).method.message_count == 0
    got = []
    for _ in range(3):
        _, props, body = channel.basic_get("to", auto_ack=True)
        got.append((body, props.headers, props.delivery_mode, props.content_type))
    assert got == [
        (f"m{i}".encode(), {"n": i, "tag": "moved"}, 2, "text/plain") for i in range(3)
    ]
    assert kilt.get("/api/shovels").body == []


def test_move_goes_on_when_the_client_leaves_right_after_the_put(
    kilt_broker: Broker, kilt: Api, vhost: str, channel: Any
) -> None:
    _fill(channel, "from", MANY)
    channel.queue_declare("to")
    body = (
        b'{"value": {"src-uri": "amqp:///' + q(vhost).encode() + b'", "src-queue": "from",'
        b' "dest-uri": "amqp:///' + q(vhost).encode() + b'", "dest-queue": "to",'
        b' "src-delete-after": "queue-length"}}'
    )
    url = urlsplit(kilt.base)
    path = f"/api/parameters/shovel/{q(vhost)}/gone"
    request = (
        f"PUT {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        "Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80)) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
    _wait_gone(kilt, vhost, "gone")
    assert channel.queue_declare("to", passive=True).method.message_count == MANY
    assert channel.queue_declare("from", passive=True).method.message_count == 0
    seen = set()
    for _ in range(MANY):
        _, props, payload = channel.basic_get("to", auto_ack=True)
        seen.add((payload, props.headers["n"]))
    assert seen == {(f"m{i}".encode(), i) for i in range(MANY)}


def test_moved_persistent_messages_survive_a_restart(tmp_path: Path) -> None:
    def broker() -> Broker:
        return Broker(port=0, management_port=0, data_dir=tmp_path / "data")

    with broker() as first:
        conn = pika.BlockingConnection(
            pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{first.port}/%2F")
        )
        channel = conn.channel()
        _fill(channel, "from", MANY, durable=True)
        channel.queue_declare("to", durable=True)
        conn.close()
        api = Api(first.management_url or "")
        assert api.put("/api/parameters/shovel/%2F/mv", _move("/", "from", "to")).status == 201
        _wait_gone(api, "/", "mv")
    with broker() as second:
        api = Api(second.management_url or "")
        assert _messages(api, "/", "to") == MANY
        assert _messages(api, "/", "from") == 0
        fetched = api.post("/api/queues/%2F/to/get", {
            "count": 1, "ackmode": "ack_requeue_true", "encoding": "auto",
        }).body[0]
        assert fetched["payload"] == "m0"
        assert fetched["properties"]["headers"] == {"n": 0, "tag": "moved"}
        assert fetched["properties"]["delivery_mode"] == 2


def test_a_shovel_that_cannot_go_on_is_terminated_and_listed(
    kilt: Api, vhost: str, channel: Any
) -> None:
    _fill(channel, "from", 3)
    channel.queue_declare("to", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    put = kilt.put(f"/api/parameters/shovel/{q(vhost)}/stuck", _move(vhost, "from", "to"))
    assert put.status == 201
    [shovel] = kilt.get(f"/api/shovels/{q(vhost)}").body
    assert {k: shovel[k] for k in ("name", "vhost", "type", "state")} == {
        "name": "stuck", "vhost": vhost, "type": "dynamic", "state": "terminated",
    }
    assert "refused" in shovel["reason"]
    [parameter] = kilt.get(f"/api/parameters/shovel/{q(vhost)}").body
    assert parameter["value"]["dest-queue"] == "to"
    assert parameter["component"] == "shovel"
    assert _messages(kilt, vhost, "to") == 1
    assert _messages(kilt, vhost, "from") == 2  # the refused message stayed
    assert kilt.delete(f"/api/parameters/shovel/{q(vhost)}/stuck").status == 204
    assert kilt.get(f"/api/shovels/{q(vhost)}").body == []
    assert kilt.delete(f"/api/parameters/shovel/{q(vhost)}/stuck").status == 404


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"src-uri": "amqp://elsewhere:5672/%2F"}, "without a host"),
        ({"dest-queue": None, "dest-exchange": "amq.direct"}, "dest-exchange"),
        ({"src-delete-after": "never"}, "src-delete-after"),
        ({"src-protocol": "amqp10"}, "only amqp091"),
        ({"dest-queue": "nowhere"}, "NOT_FOUND"),
        ({"dest-queue": "from"}, "the same queue"),
    ],
)
def test_unsupported_shovels_are_refused(
    kilt: Api, vhost: str, channel: Any, extra: dict[str, Any], says: str
) -> None:
    _fill(channel, "from", 1)
    channel.queue_declare("to")
    value = _move(vhost, "from", "to", **extra)
    value["value"] = {k: v for k, v in value["value"].items() if v is not None}
    reply = kilt.put(f"/api/parameters/shovel/{q(vhost)}/bad", value)
    assert reply.status == 400
    assert says in reply.body["reason"]
    assert _messages(kilt, vhost, "from") == 1
    assert kilt.get(f"/api/parameters/shovel/{q(vhost)}").body == []
