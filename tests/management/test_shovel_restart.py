"""Dynamic shovels are kept in the store, as RabbitMQ keeps them as runtime parameters:
a shovel that has not finished when the broker stops goes on after the restart (moving
the messages it had left, no more), a finished one is gone; definitions export and import
carry them (component ``shovel``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin, AdminError
from kiltmq.broker.message import Message
from kiltmq.testing import BrokerFixture

from .api import Api

pytestmark = pytest.mark.timeout(120)

PERSISTENT = pika.BasicProperties(delivery_mode=2)
FULL_AT_5 = {"x-max-length": 5, "x-overflow": "reject-publish"}


def _move(source: str, destination: str, after: Any = "queue-length") -> dict[str, Any]:
    return {
        "src-uri": "amqp:///", "src-queue": source,
        "dest-uri": "amqp:///", "dest-queue": destination, "src-delete-after": after,
    }


@pytest.fixture
def channel(amqp_broker: BrokerFixture) -> Iterator[Any]:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()


def _bodies(channel: Any, queue: str) -> list[str]:
    bodies: list[str] = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body.decode())


@pytest.mark.kiltmq_broker(durable=True, management_port=0)
def test_an_unfinished_shovel_goes_on_after_a_restart(
    amqp_broker: BrokerFixture, channel: Any
) -> None:
    channel.queue_declare("from", durable=True)
    channel.queue_declare("to", durable=True, arguments=FULL_AT_5)
    for i in range(10):
        channel.basic_publish("", "from", f"m{i}".encode(), PERSISTENT)
    channel.queue_declare("from", passive=True)  # a round trip: the publishes are in
    api = Api(amqp_broker.management_url)
    reply = api.put("/api/parameters/shovel/%2F/mv", {"value": _move("from", "to")})
    assert reply.status == 201, reply.text
    # "to" took five; the sixth was refused, so the shovel stopped with five to go
    [status] = api.get("/api/shovels/%2F").body
    assert (status["state"], status["reason"]) == ("terminated", "queue 'to' refused a message")
    for i in range(3):  # published after the shovel started: not its to move
        channel.basic_publish("", "from", f"late{i}".encode(), PERSISTENT)
    channel.queue_purge("to")
    channel.connection.close()

    amqp_broker.restart()

    api = Api(amqp_broker.management_url)
    for _ in range(10_000):
        if api.get("/api/parameters/shovel/%2F/mv").status == 404:
            break
    else:
        pytest.fail("the shovel did not finish after the restart")
    assert api.get("/api/shovels").body == []
    with pika.BlockingConnection(pika.URLParameters(amqp_broker.url)) as conn:
        again = conn.channel()
        assert _bodies(again, "to") == [f"m{i}" for i in range(5, 10)]
        assert _bodies(again, "from") == ["late0", "late1", "late2"]

    amqp_broker.restart()  # finished: not started again
    assert Api(amqp_broker.management_url).get("/api/parameters/shovel").body == []


@pytest.mark.kiltmq_broker(durable=True, management_port=0)
def test_a_shovel_whose_queue_is_gone_stays_terminated_until_deleted(
    amqp_broker: BrokerFixture, channel: Any
) -> None:
    channel.queue_declare("from", durable=True)
    # not durable (gone after a restart), and refusing: the shovel stops with one to go
    channel.queue_declare("to", arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    channel.basic_publish("", "from", b"kept", PERSISTENT)
    channel.queue_declare("from", passive=True)  # a round trip: the publish is in
    api = Api(amqp_broker.management_url)
    reply = api.put("/api/parameters/shovel/%2F/mv", {"value": _move("from", "to", 1)})
    assert reply.status == 201, reply.text
    channel.connection.close()
    amqp_broker.restart()
    api = Api(amqp_broker.management_url)
    [status] = api.get("/api/shovels/%2F").body
    assert (status["state"], status["reason"]) == ("terminated", "no queue 'to' in vhost '/'")
    [parameter] = api.get("/api/parameters/shovel/%2F").body
    assert parameter["value"] == _move("from", "to", 1)
    assert api.delete("/api/parameters/shovel/%2F/mv").status == 204
    amqp_broker.restart()
    assert Api(amqp_broker.management_url).get("/api/shovels").body == []
    with pika.BlockingConnection(pika.URLParameters(amqp_broker.url)) as conn:
        assert conn.channel().queue_declare("from", passive=True).method.message_count == 1


def test_definitions_carry_shovels() -> None:
    with Broker(port=0) as broker:
        admin = Admin(broker)

        def prepare() -> None:
            host = broker.vhosts["/"]
            host.declare_queue("src")
            for i in range(3):
                host.queues["src"].publish(Message.build("", "src", f"m{i}".encode()))

        broker.call_in_loop(prepare)
        definitions = {
            "queues": [{"name": "dst", "vhost": "/", "durable": True, "auto_delete": False,
                        "arguments": {}}],
            "parameters": [
                {"component": "shovel", "vhost": "/", "name": "mv", "value": _move("src", "dst")},
                {"component": "shovel", "vhost": "/", "name": "waits",
                 "value": _move("src", "nowhere", 2)},
            ],
        }
        broker.call_in_loop(lambda: admin.import_definitions(definitions))
        assert broker.call_in_loop(lambda: broker.vhosts["/"].queues["dst"].message_count) == 3
        exported = broker.call_in_loop(admin.export_definitions)
        assert exported["parameters"] == [{
            "value": _move("src", "nowhere", 2), "vhost": "/", "component": "shovel",
            "name": "waits",
        }]
        per_vhost = broker.call_in_loop(lambda: admin.export_definitions("/"))
        assert per_vhost["parameters"] == exported["parameters"]
        bad = {"parameters": [{"component": "shovel", "vhost": "/", "name": "far",
                               "value": {**_move("src", "dst"), "dest-uri": "amqp://far/"}}]}
        with pytest.raises(AdminError, match="shovel 'far' in vhost '/': dest-uri"):
            broker.call_in_loop(lambda: admin.import_definitions(bad))
