"""Topic permissions (RabbitMQ's "topic authorisation"): the same raw AMQP steps against
RabbitMQ (topic permissions set through its HTTP API) and kiltmq (through its admin
interface), with a user of the test's own; the transcripts, refusals with their reply
codes, texts and method ids included, must be equal.

What the steps show: only topic exchanges are checked; basic.publish checks the routing
key against the write pattern, queue.bind, queue.unbind, exchange.bind and
exchange.unbind check the binding key against the read pattern of the source exchange
(never of the destination); ``{username}`` and ``{vhost}`` are expanded, ``{client_id}``
is not for an AMQP 0-9-1 client (whatever its client properties say); an exchange
without a topic permission allows every key; changes apply to channels opened after
them, and clearing them allows everything again."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin
from kiltmq.protocol import spec

from .context import Context
from .policy_admin import rabbitmq_api, rabbitmq_api_available
from .recording import RecordingConnection
from .registry import E, Expectation, unmet_expectations
from .runner import TEXT_RULES
from .transcript import Transcript

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

#: Set (write, read) patterns of the user for an exchange (None: clear them all).
SetTopic = Callable[[str | None, str, str], Awaitable[None]]

WRITE = "^a\\.|^u\\.{username}$|^v\\.{vhost}$|^c\\.{client_id}$"
READ = "^r\\.|^u\\.{username}$"


@dataclass
class Target:
    """One broker as the steps see it: an AMQP URL of the user's, the user, and how to
    set (or clear) the user's topic permissions in the vhost "/"."""

    url: str
    user: str
    set_topic: SetTopic


def _user() -> str:
    return f"kiltmq-topics-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rabbit(rabbitmq_url: str) -> Iterator[Target]:
    rabbitmq_api_available()
    user = _user()
    try:
        assert rabbitmq_api("PUT", f"/users/{user}", {"password": "pw", "tags": ""})[0] == 201
        assert rabbitmq_api("PUT", f"/permissions/%2F/{user}",
                            {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201

        async def set_topic(exchange: str | None, write: str, read: str) -> None:
            if exchange is None:
                status, _ = await asyncio.to_thread(
                    rabbitmq_api, "DELETE", f"/topic-permissions/%2F/{user}"
                )
            else:
                status, _ = await asyncio.to_thread(
                    rabbitmq_api, "PUT", f"/topic-permissions/%2F/{user}",
                    {"exchange": exchange, "write": write, "read": read},
                )
            assert status in (201, 204)

        parts = urlsplit(rabbitmq_url)
        yield Target(f"amqp://{user}:pw@{parts.hostname}:{parts.port or 5672}", user,
                     set_topic)
    finally:
        rabbitmq_api("DELETE", f"/users/{user}")


@pytest.fixture
def kilt() -> Iterator[Target]:
    user = _user()
    with Broker(port=0) as broker:
        admin = Admin(broker)

        def define() -> None:
            admin.add_user(user, "pw")
            admin.set_permissions(user, "/", ".*", ".*", ".*")

        broker.call_in_loop(define)

        async def set_topic(exchange: str | None, write: str, read: str) -> None:
            if exchange is None:
                await asyncio.to_thread(
                    broker.call_in_loop, admin.clear_topic_permissions, user, "/"
                )
            else:
                await asyncio.to_thread(
                    broker.call_in_loop, admin.set_topic_permissions, user, "/", exchange,
                    write, read,
                )

        yield Target(f"amqp://{user}:pw@127.0.0.1:{broker.port}", user, set_topic)


class _Steps:
    """Each step on a channel of its own (a refusal closes it), recorded."""

    def __init__(self, ctx: Context, conn: RecordingConnection) -> None:
        self.ctx = ctx
        self.conn = conn

    async def publish(self, exchange: str, routing_key: str) -> None:
        ch = await self.conn.channel(record=True)
        ch.publish(exchange, routing_key, "x")
        # a round trip: declare-ok if the publish was taken, else the channel's close
        await ch.call(spec.ExchangeDeclare(exchange=exchange, passive=True))

    async def bind(self, method: spec.Method) -> None:
        ch = await self.conn.channel(record=True)
        await ch.call(method)


async def _scenario(ctx: Context, target: Target) -> None:
    await target.set_topic("amq.topic", WRITE, READ)
    await target.set_topic("amq.direct", "^nothing$", "^nothing$")  # not a topic exchange
    conn = await ctx.connect("c1", record=True)
    steps = _Steps(ctx, conn)
    queue = ctx.q("bound")
    setup = await conn.channel(record=True)
    await setup.call(spec.QueueDeclare(queue=queue, exclusive=True))
    x = ctx.x("fan")
    await setup.call(spec.ExchangeDeclare(exchange=x, type="fanout", auto_delete=False))
    for key in ("a.b", "b.a", "", f"u.{target.user}", "u.someone", "v./", "c.me",
                "c.{client_id}"):
        await steps.publish("amq.topic", key)
    await steps.publish("amq.direct", "zzz")
    await steps.publish("amq.fanout", "b.a")  # no topic permission for it
    for key in ("r.x", "x.r", f"u.{target.user}"):
        await steps.bind(spec.QueueBind(queue=queue, exchange="amq.topic", routing_key=key))
    await steps.bind(spec.QueueUnbind(queue=queue, exchange="amq.topic", routing_key="x.r"))
    await steps.bind(spec.QueueUnbind(queue=queue, exchange="amq.topic", routing_key="r.x"))
    await steps.bind(spec.QueueBind(queue=queue, exchange="amq.direct", routing_key="zz"))
    for key in ("r.y", "y.r"):
        await steps.bind(spec.ExchangeBind(destination=x, source="amq.topic", routing_key=key))
        await steps.bind(
            spec.ExchangeUnbind(destination=x, source="amq.topic", routing_key=key)
        )
    # a topic exchange as the destination is not checked
    await steps.bind(spec.ExchangeBind(destination="amq.topic", source=x, routing_key="y.r"))
    await steps.bind(spec.ExchangeUnbind(destination="amq.topic", source=x, routing_key="y.r"))
    # {client_id} stays as it is, whatever the client properties say
    c2 = await ctx.connect("c2", record=True, client_properties={"client_id": "me"})
    await _Steps(ctx, c2).publish("amq.topic", "c.me")
    # a change applies to channels opened after it
    await target.set_topic("amq.topic", "^b\\.", "")
    for key in ("b.a", "a.b"):
        await steps.publish("amq.topic", key)
    await steps.bind(spec.QueueBind(queue=queue, exchange="amq.topic", routing_key=""))
    await steps.bind(spec.QueueBind(queue=queue, exchange="amq.topic", routing_key="r.x"))
    await target.set_topic(None, "", "")
    await steps.publish("amq.topic", "a.b")
    await steps.bind(spec.QueueBind(queue=queue, exchange="amq.topic", routing_key="x.r"))
    await conn.close()


async def _run(target: Target) -> Transcript:
    rules = [(re.escape(target.user), "USER"), *TEXT_RULES]
    ctx = Context(f"{target.url}/%2F", rules)
    try:
        await asyncio.wait_for(_scenario(ctx, target), 60)
    finally:
        await ctx.cleanup()
    return ctx.t


def _refused(key: str, method_id: int, class_id: int = 60) -> Expectation:
    return E("channel.close", reply_code=403, class_id=class_id, method_id=method_id,
             reply_text=f"ACCESS_REFUSED - access to topic '{key}' in exchange 'amq.topic' "
                        f"in vhost '/' refused for user 'USER'")


EXPECT = [
    _refused("b.a", 40),
    _refused("", 40),
    _refused("c.me", 40),
    _refused("x.r", 20, 50),
    _refused("x.r", 50, 50),
    _refused("y.r", 30, 40),
    _refused("y.r", 40, 40),
    _refused("a.b", 40),
    _refused("r.x", 20, 50),
]


def test_topic_permissions_same_as_rabbitmq(rabbit: Target, kilt: Target) -> None:
    expected = asyncio.run(_run(rabbit))
    assert not unmet_expectations(expected.entries, EXPECT), expected.text()
    got = asyncio.run(_run(kilt))
    assert got.entries == expected.entries, (
        f"--- RabbitMQ\n{expected.text()}\n--- kiltmq\n{got.text()}"
    )
