# Twisted's and txAMQP's untyped calls are fine here.
# mypy: disable-error-code="no-untyped-call"
"""txAMQP scenarios, run in a subprocess with Twisted's default reactor.

Usage: ``python txamqp_scenarios.py AMQP_URL SPEC_XML [SCENARIO[=QUEUE] ...]``. Prints one
JSON object: scenario name -> {"ok": bool, "error": str}. A scenario that shares a queue
with another client (``*_shared_queue``) is given the queue's name after ``=``. A
subprocess keeps Twisted's reactor (which cannot be restarted) away from pytest's event
loops.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
import uuid
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import urlsplit

import txamqp.spec
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ClientCreator
from txamqp.client import Closed, TwistedDelegate
from txamqp.content import Content
from txamqp.protocol import AMQClient
from txamqp.queue import TimeoutDeferredQueue

TIMEOUT = 10
SCENARIO_TIMEOUT = 20
ROUND_ROBIN = {("task 0", "task 2", "task 4"), ("task 1", "task 3", "task 5")}
#: The messages of the shared-queue scenarios, in order, whichever client sends them; the
#: other client (pika, in test_cross_dialect.py) checks or sends the same.
SHARED_BODIES = ("first", "second", "third")

Gen = Generator[Any, Any, None]


class ConfirmingDelegate(TwistedDelegate):  # type: ignore[misc]
    """TwistedDelegate plus publisher confirms (basic.ack from the server)."""

    def basic_ack(self, ch: Any, msg: Any) -> None:
        self.client.confirms.put(msg)


class Env:
    def __init__(self, url: str, spec_path: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5672
        self.user = parts.username or "guest"
        self.password = parts.password or "guest"
        self.spec = txamqp.spec.load(spec_path)
        self.prefix = f"txamqp-{uuid.uuid4().hex[:8]}."
        self.clients: list[Any] = []
        #: The queue shared with another client, named on the command line.
        self.shared = ""
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def q(self, short: str) -> str:
        """A queue name unique to this run, deleted by :meth:`close_all`."""
        self.queues.append(self.prefix + short)
        return self.prefix + short

    def x(self, short: str) -> str:
        """An exchange name unique to this run, deleted by :meth:`close_all`."""
        self.exchanges.append(self.prefix + short)
        return self.prefix + short

    @defer.inlineCallbacks
    def connect(self, mechanism: str = "AMQPLAIN") -> Gen:
        client = yield ClientCreator(
            reactor, AMQClient, delegate=ConfirmingDelegate(), vhost="/", spec=self.spec
        ).connectTCP(self.host, self.port, timeout=TIMEOUT)
        client.confirms = TimeoutDeferredQueue()
        self.clients.append(client)
        yield client.authenticate(self.user, self.password, mechanism=mechanism)
        defer.returnValue(client)

    @defer.inlineCallbacks
    def channel(self, client: Any, number: int = 1) -> Gen:
        chan = yield client.channel(number)
        yield chan.channel_open()
        defer.returnValue(chan)

    @defer.inlineCallbacks
    def close_all(self) -> Gen:
        """Close the scenario's connections, then delete what it declared."""
        for client in self.clients:
            with contextlib.suppress(Exception):
                yield client.close(within=2)
        self.clients = []
        if not (self.queues or self.exchanges):
            return
        with contextlib.suppress(Exception):
            client = yield self.connect()
            number = 1
            for kind, name in [("queue", q) for q in self.queues] + [
                ("exchange", x) for x in self.exchanges
            ]:
                ch = yield self.channel(client, number)
                number += 1
                with contextlib.suppress(Closed):
                    yield getattr(ch, f"{kind}_delete")(**{kind: name})
            yield client.close(within=2)
        self.clients = []


def body_of(msg: Any) -> str:
    body = msg.content.body
    return body.decode() if isinstance(body, bytes) else str(body)


@defer.inlineCallbacks
def take(client: Any, tag: str, n: int) -> Gen:
    queue = yield client.queue(tag)
    bodies = []
    for _ in range(n):
        msg = yield queue.get(timeout=TIMEOUT)
        bodies.append(body_of(msg))
    defer.returnValue(bodies)


@defer.inlineCallbacks
def wait_confirms(client: Any, last_tag: int) -> Gen:
    """Read basic.ack until every tag up to ``last_tag`` is confirmed (acks may be
    coalesced with ``multiple``)."""
    settled: set[int] = set()
    while not settled.issuperset(range(1, last_tag + 1)):
        ack = yield client.confirms.get(timeout=TIMEOUT)
        settled.update(range(1, ack.delivery_tag + 1) if ack.multiple else [ack.delivery_tag])
    defer.returnValue(settled)


# -- scenarios ---------------------------------------------------------------------------


@defer.inlineCallbacks
def consumer_declares_binds_and_consumes(env: Env) -> Gen:
    x, q = env.x("logs"), env.q("inbox")
    consumer = yield env.connect()
    cch = yield env.channel(consumer)
    yield cch.exchange_declare(exchange=x, type="direct")
    yield cch.queue_declare(queue=q, exclusive=True)
    yield cch.queue_bind(queue=q, exchange=x, routing_key="info")
    reply = yield cch.basic_consume(queue=q, no_ack=True, consumer_tag="c")
    assert reply.consumer_tag == "c", reply
    producer = yield env.connect(mechanism="PLAIN")
    pch = yield env.channel(producer)
    for key in ("info", "debug", "info"):
        pch.basic_publish(exchange=x, routing_key=key, content=Content(f"{key} line"))
    got = yield take(consumer, "c", 2)
    assert got == ["info line", "info line"], got


@defer.inlineCallbacks
def message_waits_for_a_consumer(env: Env) -> Gen:
    q = env.q("work")
    producer = yield env.connect()
    pch = yield env.channel(producer)
    yield pch.queue_declare(queue=q, auto_delete=False)
    yield pch.confirm_select()
    content = Content("queued")
    content["delivery-mode"] = 2
    pch.basic_publish(exchange="", routing_key=q, content=content)
    yield wait_confirms(producer, 1)
    yield producer.close(within=2)
    consumer = yield env.connect()
    cch = yield env.channel(consumer)
    ok = yield cch.queue_declare(queue=q, passive=True)
    assert ok.message_count == 1, ok
    reply = yield cch.basic_consume(queue=q)
    queue = yield consumer.queue(reply.consumer_tag)
    msg = yield queue.get(timeout=TIMEOUT)
    assert body_of(msg) == "queued"
    assert msg.content["delivery-mode"] == 2
    yield cch.basic_ack(delivery_tag=msg.delivery_tag)
    yield cch.queue_delete(queue=q)


@defer.inlineCallbacks
def two_consumers_share_round_robin(env: Env) -> Gen:
    q = env.q("tasks")
    tags = []
    clients = []
    for i in range(2):
        client = yield env.connect()
        ch = yield env.channel(client)
        yield ch.queue_declare(queue=q, auto_delete=True)
        reply = yield ch.basic_consume(queue=q, no_ack=True, consumer_tag=f"w{i}")
        tags.append(reply.consumer_tag)
        clients.append(client)
    producer = yield env.connect()
    pch = yield env.channel(producer)
    for i in range(6):
        pch.basic_publish(exchange="", routing_key=q, content=Content(f"task {i}"))
    got = set()
    for client, tag in zip(clients, tags, strict=True):
        bodies = yield take(client, tag, 3)
        got.add(tuple(bodies))
    assert got == ROUND_ROBIN, got


@defer.inlineCallbacks
def fanout_every_consumer_gets_every_message(env: Env) -> Gen:
    x = env.x("news")
    subscribers = []
    for i in range(3):
        client = yield env.connect()
        ch = yield env.channel(client)
        yield ch.exchange_declare(exchange=x, type="fanout")
        ok = yield ch.queue_declare(queue="", exclusive=True)
        assert ok.queue.startswith("amq.gen-"), ok
        yield ch.queue_bind(queue=ok.queue, exchange=x)
        yield ch.basic_consume(queue=ok.queue, no_ack=True, consumer_tag=f"s{i}")
        subscribers.append((client, f"s{i}"))
    producer = yield env.connect()
    pch = yield env.channel(producer)
    for i in range(3):
        pch.basic_publish(exchange=x, routing_key="", content=Content(f"news {i}"))
    for client, tag in subscribers:
        got = yield take(client, tag, 3)
        assert got == ["news 0", "news 1", "news 2"], got
    yield pch.exchange_delete(exchange=x)


@defer.inlineCallbacks
def publisher_confirms(env: Env) -> Gen:
    client = yield env.connect()
    ch = yield env.channel(client)
    ok = yield ch.queue_declare(queue="", exclusive=True)
    yield ch.confirm_select()
    for i in range(4):
        ch.basic_publish(exchange="", routing_key=ok.queue, content=Content(f"m{i}"))
    settled = yield wait_confirms(client, 4)
    assert settled == {1, 2, 3, 4}, settled
    # A mandatory unroutable message comes back through basic.return.
    ch.basic_publish(
        exchange="amq.direct", routing_key="nowhere", mandatory=True, content=Content("lost")
    )
    returned = yield client.basic_return_queue.get(timeout=TIMEOUT)
    assert returned.reply_code == 312 and body_of(returned) == "lost", returned


@defer.inlineCallbacks
def basic_get(env: Env) -> Gen:
    client = yield env.connect()
    ch = yield env.channel(client)
    ok = yield ch.queue_declare(queue="", exclusive=True)
    reply = yield ch.basic_get(queue=ok.queue)
    assert reply.method.name == "get-empty", reply
    yield ch.confirm_select()
    content = Content("first")
    content["content-type"] = "text/plain"
    content["headers"] = {"k": "v"}
    ch.basic_publish(exchange="", routing_key=ok.queue, content=content)
    ch.basic_publish(exchange="", routing_key=ok.queue, content=Content("second"))
    yield wait_confirms(client, 2)
    msg = yield ch.basic_get(queue=ok.queue)
    assert msg.method.name == "get-ok", msg
    assert body_of(msg) == "first" and msg.message_count == 1, msg
    assert msg.content["content-type"] == "text/plain"
    assert msg.content["headers"] == {"k": "v"}, msg.content.properties
    yield ch.basic_ack(delivery_tag=msg.delivery_tag)
    msg = yield ch.basic_get(queue=ok.queue, no_ack=True)
    assert body_of(msg) == "second" and msg.message_count == 0, msg


@defer.inlineCallbacks
def reject_requeue_redelivers(env: Env) -> Gen:
    client = yield env.connect()
    ch = yield env.channel(client)
    ok = yield ch.queue_declare(queue="", exclusive=True)
    reply = yield ch.basic_consume(queue=ok.queue)
    queue = yield client.queue(reply.consumer_tag)
    ch.basic_publish(exchange="", routing_key=ok.queue, content=Content("flaky"))
    msg = yield queue.get(timeout=TIMEOUT)
    assert not msg.redelivered
    yield ch.basic_reject(delivery_tag=msg.delivery_tag, requeue=True)
    msg = yield queue.get(timeout=TIMEOUT)
    assert msg.redelivered and body_of(msg) == "flaky", msg
    yield ch.basic_nack(delivery_tag=msg.delivery_tag, requeue=True)
    msg = yield queue.get(timeout=TIMEOUT)
    assert msg.redelivered, msg
    yield ch.basic_ack(delivery_tag=msg.delivery_tag)


@defer.inlineCallbacks
def channel_error_leaves_connection_usable(env: Env) -> Gen:
    client = yield env.connect()
    ch = yield env.channel(client, 1)
    try:
        yield ch.queue_declare(queue=env.q("missing"), passive=True)
    except Closed as exc:
        close = exc.args[0]
        assert close.reply_code == 404, close
        text = close.reply_text
        assert "NOT_FOUND" in (text.decode() if isinstance(text, bytes) else text), close
    else:
        raise AssertionError("no channel error")
    assert not client.closed
    ch2 = yield env.channel(client, 2)
    ok = yield ch2.queue_declare(queue="", exclusive=True)
    ch2.basic_publish(exchange="", routing_key=ok.queue, content=Content("fine"))
    msg = yield ch2.basic_get(queue=ok.queue, no_ack=True)
    assert body_of(msg) == "fine", msg


@defer.inlineCallbacks
def publish_to_shared_queue(env: Env) -> Gen:
    """SHARED_BODIES with properties, in a transaction: queued when tx.commit-ok comes."""
    client = yield env.connect()
    ch = yield env.channel(client)
    yield ch.tx_select()
    for i, body in enumerate(SHARED_BODIES):
        content = Content(body)
        content["content-type"] = "text/plain"
        content["delivery-mode"] = 2
        content["message-id"] = f"m{i}"
        content["headers"] = {"n": i, "from": "txamqp"}
        ch.basic_publish(exchange="", routing_key=env.shared, content=content)
    yield ch.tx_commit()


@defer.inlineCallbacks
def consume_from_shared_queue(env: Env) -> Gen:
    """Consume SHARED_BODIES (published by pika) with acks, and check their properties."""
    client = yield env.connect()
    ch = yield env.channel(client)
    yield ch.basic_qos(prefetch_count=10)
    reply = yield ch.basic_consume(queue=env.shared, consumer_tag="shared")
    assert reply.consumer_tag == "shared", reply
    queue = yield client.queue("shared")
    for i, body in enumerate(SHARED_BODIES):
        msg = yield queue.get(timeout=TIMEOUT)
        assert body_of(msg) == body, msg
        assert not msg.redelivered, msg
        assert msg.content["content-type"] == "text/plain", msg.content.properties
        assert msg.content["delivery-mode"] == 2, msg.content.properties
        assert msg.content["message-id"] == f"m{i}", msg.content.properties
        assert msg.content["headers"] == {"n": i, "from": "pika"}, msg.content.properties
        yield ch.basic_ack(delivery_tag=msg.delivery_tag)
    yield ch.basic_cancel(consumer_tag="shared")
    ok = yield ch.queue_declare(queue=env.shared, passive=True)
    assert ok.message_count == 0, ok


SCENARIOS: dict[str, Callable[[Env], defer.Deferred[None]]] = {
    fn.__name__: fn
    for fn in (
        consumer_declares_binds_and_consumes,
        message_waits_for_a_consumer,
        two_consumers_share_round_robin,
        fanout_every_consumer_gets_every_message,
        publisher_confirms,
        basic_get,
        reject_requeue_redelivers,
        channel_error_leaves_connection_usable,
        publish_to_shared_queue,
        consume_from_shared_queue,
    )
}


@defer.inlineCallbacks
def run(_reactor: Any, url: str, spec_path: str, names: list[str]) -> Gen:
    results: dict[str, dict[str, Any]] = {}
    for arg in names:
        name, _, shared = arg.partition("=")
        env = Env(url, spec_path)
        env.shared = shared
        d = SCENARIOS[name](env)
        d.addTimeout(SCENARIO_TIMEOUT, reactor)
        try:
            yield d
            results[name] = {"ok": True, "error": ""}
        except Exception:
            results[name] = {"ok": False, "error": traceback.format_exc()}
        yield env.close_all()
    sys.stdout.write(json.dumps(results) + "\n")


def main() -> None:
    url, spec_path, *names = sys.argv[1:]
    task.react(run, (url, spec_path, names or list(SCENARIOS)))


if __name__ == "__main__":
    main()
