"""Scenarios: routing, publishing, consumers and prefetch."""

from __future__ import annotations

from typing import Any

from kiltmq.protocol import BasicProperties, ContentReceived, spec

from .context import Context
from .recording import RecordingChannel
from .registry import E, scenario

QueueDeclare = spec.QueueDeclare


async def queues_bound(
    ch: RecordingChannel, ctx: Context, exchange: str, bindings: dict[str, list[Any]]
) -> dict[str, str]:
    """Declare one exclusive queue per binding key list entry name; return name -> queue."""
    names = {}
    for label, keys in bindings.items():
        q = ctx.q(label)
        names[label] = q
        await ch.call(QueueDeclare(queue=q, exclusive=True))
        for key in keys:
            if isinstance(key, dict):
                await ch.call(spec.QueueBind(queue=q, exchange=exchange, arguments=key))
            else:
                await ch.call(spec.QueueBind(queue=q, exchange=exchange, routing_key=key))
    return names


@scenario(
    E("drained", queue="a", bodies=["k1", "k2"]), E("drained", queue="b", bodies=["k2", "empty"])
)
async def routing_direct(ctx: Context) -> None:
    ch = await ctx.channel()
    x = ctx.x("direct")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="direct"))
    queues = await queues_bound(ch, ctx, x, {"a": ["k1", "k2", "k2"], "b": ["k2", ""]})
    for key in ("k1", "k2", "k3", "", "K1"):
        ch.publish(x, key, key or "empty")
    for q in queues.values():
        await ch.drain(q)
    await ch.call(spec.QueueUnbind(queue=queues["a"], exchange=x, routing_key="k2"))
    ch.publish(x, "k2", "after unbind")
    for q in queues.values():
        await ch.drain(q)


TOPIC_BINDINGS = {
    "star-orange-star": ["*.orange.*"],
    "star-star-rabbit": ["*.*.rabbit"],
    "lazy-hash": ["lazy.#"],
    "hash": ["#"],
    "a-hash-b": ["a.#.b"],
    "a-star": ["a.*"],
    "star": ["*"],
    "exact": ["a.b.c"],
    "hash-hash": ["#.#"],
    "empty-words": ["a..b"],
    "hash-star": ["#.*"],
    "star-hash-star": ["*.#.*"],
    "empty": [""],
}
TOPIC_KEYS = [
    "quick.orange.rabbit",
    "lazy.orange.elephant",
    "quick.orange.fox",
    "lazy.brown.fox",
    "lazy.pink.rabbit",
    "quick.brown.fox",
    "orange",
    "quick.orange.male.rabbit",
    "lazy.orange.male.rabbit",
    "lazy",
    "a.b",
    "a.x.b",
    "a.x.y.b",
    "a..b",
    "a.b.c",
    "a",
    "",
    ".",
    "a.",
    ".a",
]


@scenario(E("drained", queue="a-hash-b", bodies=["a.b", "a.x.b", "a.x.y.b", "a..b"]))
async def routing_topic(ctx: Context) -> None:
    ch = await ctx.channel()
    x = ctx.x("topic")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="topic"))
    queues = await queues_bound(ch, ctx, x, TOPIC_BINDINGS)
    for key in TOPIC_KEYS:
        ch.publish(x, key, key)
    for q in queues.values():
        await ch.drain(q)


@scenario(E("drained", bodies=["one", "two"]))
async def routing_fanout(ctx: Context) -> None:
    ch = await ctx.channel()
    x = ctx.x("fanout")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="fanout"))
    queues = await queues_bound(ch, ctx, x, {"a": ["ignored"], "b": [""], "c": ["x", "y"]})
    ch.publish(x, "one", "one")
    ch.publish(x, "", "two")
    for q in queues.values():
        await ch.drain(q)


HEADER_BINDINGS: dict[str, list[Any]] = {
    "all": [{"x-match": "all", "format": "pdf", "type": "report"}],
    "any": [{"x-match": "any", "format": "pdf", "type": "log"}],
    "default-all": [{"format": "pdf", "type": "report"}],
    "x-ignored": [{"x-match": "all", "format": "pdf", "x-extra": "anything"}],
    "int-value": [{"x-match": "all", "size": 3}],
    "empty-all": [{"x-match": "all"}],
    "empty-any": [{"x-match": "any"}],
    "void": [{"x-match": "all", "flag": None}],
    # RabbitMQ 3.10: the -with-x forms also match x- headers.
    "all-with-x": [{"x-match": "all-with-x", "format": "pdf", "x-extra": "anything"}],
    "any-with-x": [{"x-match": "any-with-x", "x-extra": "anything", "size": 3}],
}
HEADER_MESSAGES: list[dict[str, Any]] = [
    {"format": "pdf", "type": "report"},
    {"format": "pdf", "type": "log"},
    {"format": "zip", "type": "log"},
    {"format": "zip", "type": "report"},
    {"format": "pdf"},
    {"format": "pdf", "type": "report", "x-extra": "anything"},
    {"size": 3},
    {"size": "3"},
    {"flag": None},
    {"flag": "on"},
    {},
]


@scenario(
    E("drained", queue="all", bodies=["m0", "m5"]),
    E("drained", queue="x-ignored", bodies=["m0", "m1", "m4", "m5"]),
)
async def routing_headers(ctx: Context) -> None:
    ch = await ctx.channel()
    x = ctx.x("headers")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="headers"))
    queues = await queues_bound(ch, ctx, x, HEADER_BINDINGS)
    for i, headers in enumerate(HEADER_MESSAGES):
        ch.publish(x, "ignored", f"m{i}", properties=BasicProperties(headers=headers))
    ch.publish(x, "", "no headers")
    for q in queues.values():
        await ch.drain(q)


@scenario(E("channel.close", reply_code=404, class_id=60, method_id=40))
async def publish_missing_exchange(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    ch.publish(ctx.x("missing"), "k", "lost")
    await ch.receive()
    ch = await conn.channel()
    await ch.call(spec.ExchangeDeclare(exchange="amq.direct", passive=True))


@scenario(E("basic.return", reply_code=312, reply_text="NO_ROUTE"))
async def mandatory_unroutable(ctx: Context) -> None:
    ch = await ctx.channel()
    x = ctx.x("x")
    q = ctx.q("q")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="direct"))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x, routing_key="yes"))
    ch.publish(x, "no", "dropped silently")
    ch.publish(x, "no", "returned", mandatory=True, headers={"h": 1})
    ch.publish(x, "yes", "routed", mandatory=True)
    ch.publish("", ctx.q("absent"), "returned by default exchange", mandatory=True)
    await ch.receive_n(2)
    await ch.drain(q)


@scenario(E("basic.deliver", delivery_tag=1), E("basic.cancel-ok", consumer_tag="c1"))
async def consume_and_cancel(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.ConfirmSelect())
    ch.publish("", q, "before")
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c1", no_ack=True))
    ch.publish("amq.direct", "nothing", "unroutable")
    ch.publish("", q, "during")
    await ch.receive_n(2)
    await ch.call(spec.BasicCancel(consumer_tag="c1"))
    ch.publish("", q, "after")
    await ch.settle()
    await ch.call(QueueDeclare(queue=q, passive=True))
    # Cancelling an unknown tag is not an error.
    await ch.call(spec.BasicCancel(consumer_tag="unknown"))
    # A server-generated tag.
    await ch.call(spec.BasicConsume(queue=q, no_ack=True))
    await ch.receive()


@scenario(E("basic.get-ok", body="props", delivery_tag=1))
async def properties_round_trip(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    props = BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"s": "text", "i": -5, "l": 2**40, "b": True, "f": 1.5, "n": {"t": [1, "x"]}},
        delivery_mode=2,
        priority=3,
        correlation_id="corr",
        reply_to="reply",
        expiration="60000",
        message_id="mid",
        timestamp=1700000000,
        type="kind",
        user_id="guest",
        app_id="app",
    )
    ch.publish("", q, "props", properties=props)
    big = bytes(range(256)) * 1200  # larger than one frame
    ch.publish("", q, big)
    ch.publish("", q, b"")
    reply = await ch.get(q, no_ack=True)
    assert isinstance(reply, ContentReceived)
    got = reply.properties()
    ctx.t.add("check", "properties", {n: getattr(got, n) for n in BasicProperties.FIELDS})
    reply = await ch.call(spec.BasicGet(queue=q, no_ack=True))
    ctx.check(isinstance(reply, ContentReceived) and reply.body == big, "big body intact")
    await ch.get(q, no_ack=True)
    # user_id must match the connection's user.
    ch.publish("", q, "forged", properties=BasicProperties(user_id="somebody-else"))
    await ch.receive()


@scenario(
    E("queue.declare-ok", message_count=2, consumer_count=2),
    E("basic.deliver", consumer_tag="second", body="m1"),
)
async def qos_prefetch_one_two_consumers(ctx: Context) -> None:
    conn = await ctx.connect()
    pub = await conn.channel()
    q = ctx.q("q")
    await pub.call(QueueDeclare(queue=q, exclusive=True))
    await pub.call(spec.ConfirmSelect())
    chans = []
    for tag in ("first", "second"):
        ch = await conn.channel()
        await ch.call(spec.BasicQos(prefetch_count=1))
        await ch.call(spec.BasicConsume(queue=q, consumer_tag=tag))
        chans.append(ch)
    for i in range(4):
        pub.publish("", q, f"m{i}")
    await pub.settle()
    await pub.call(QueueDeclare(queue=q, passive=True))
    first, second = chans
    await first.receive()
    await second.receive()
    first.send(spec.BasicAck(delivery_tag=1))
    await first.receive()
    await pub.call(QueueDeclare(queue=q, passive=True))
    second.send(spec.BasicAck(delivery_tag=1))
    await second.receive()
    await pub.call(QueueDeclare(queue=q, passive=True))


@scenario(
    E("queue.declare-ok", queue="b", message_count=2, consumer_count=1),
    E("basic.deliver", consumer_tag="cb", body="b0"),
)
async def qos_global_credit_moves_between_queues(ctx: Context) -> None:
    conn = await ctx.connect()
    pub = await conn.channel()
    qa, qb = ctx.q("a"), ctx.q("b")
    for q in (qa, qb):
        await pub.call(QueueDeclare(queue=q, exclusive=True))
    await pub.call(spec.ConfirmSelect())
    pub.publish("", qa, "a0")
    pub.publish("", qb, "b0")
    pub.publish("", qb, "b1")
    await pub.settle()
    ch = await conn.channel()
    await ch.call(spec.BasicQos(prefetch_count=1, global_=True))
    await ch.call(spec.BasicConsume(queue=qa, consumer_tag="ca"))
    await ch.receive()  # a0 takes the channel's only credit
    await ch.call(spec.BasicConsume(queue=qb, consumer_tag="cb"))
    await pub.call(QueueDeclare(queue=qb, passive=True))  # nothing taken from b yet
    ch.send(spec.BasicAck(delivery_tag=1))  # a is empty now; b may use the credit
    await ch.receive()


@scenario(E("connection.close", reply_code=530, class_id=60, method_id=20))
async def consume_duplicate_tag(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="dup"))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="dup"))
    await ch.conn.wait_eof()


@scenario(E("channel.close", reply_code=403, class_id=60, method_id=20))
async def consume_exclusive_conflicts(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=q))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="plain"))
    ch2 = await conn.channel()
    await ch2.call(spec.BasicConsume(queue=q, consumer_tag="excl", exclusive=True))
    await ch.call(spec.BasicCancel(consumer_tag="plain"))
    ch2 = await conn.channel()
    await ch2.call(spec.BasicConsume(queue=q, consumer_tag="excl", exclusive=True))
    ch3 = await conn.channel()
    await ch3.call(spec.BasicConsume(queue=q, consumer_tag="late"))
    # basic.get is not a consumer: allowed beside an exclusive consumer.
    ch4 = await conn.channel()
    await ch4.get(q)
    await ch2.call(spec.QueueDelete(queue=q))


@scenario(E("basic.cancel", consumer_tag="watch", no_wait=True))
async def queue_deleted_under_consumer(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    watcher = await conn.channel()
    await watcher.call(QueueDeclare(queue=q))
    await watcher.call(spec.BasicConsume(queue=q, consumer_tag="watch"))
    admin = await (await ctx.connect("admin")).channel()
    await admin.call(spec.QueueDelete(queue=q))
    await watcher.receive()
    # The channel stays open and the tag is free again.
    await watcher.call(QueueDeclare(queue=q, exclusive=True))
    await watcher.call(spec.BasicConsume(queue=q, consumer_tag="watch"))


@scenario(E("connection.close", reply_code=540, class_id=60, method_id=40))
async def publish_immediate(ctx: Context) -> None:
    ch = await ctx.channel()
    ch.conn.core.send_content(
        ch.number,
        spec.BasicPublish(exchange="", routing_key="x", immediate=True),
        BasicProperties(),
        b"now",
    )
    ch.conn.flush()
    await ch.conn.wait_eof()


@scenario(E("basic.get-ok", body="<20000 bytes, sha1 7f21d0bec0ec41ae>"))
async def small_frame_max(ctx: Context) -> None:
    conn = await ctx.socket()
    await conn.try_handshake(
        username=ctx.username, password=ctx.password, vhost=ctx.vhost, frame_max=4096
    )
    ch = await conn.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    body = bytes(i % 251 for i in range(20000))
    ch.publish("", q, body)  # split into body frames of at most 4088 bytes
    await ch.get(q, no_ack=True)
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c", no_ack=True))
    ch.publish("", q, body)
    await ch.receive()


@scenario(E("queue.declare-ok", queue="q", message_count=0, consumer_count=1))
async def nowait_methods(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    x, q = ctx.x("x"), ctx.q("q")
    ch.send(spec.ExchangeDeclare(exchange=x, type="direct", no_wait=True))
    ch.send(QueueDeclare(queue=q, exclusive=True, no_wait=True))
    ch.send(spec.QueueBind(queue=q, exchange=x, routing_key="k", no_wait=True))
    ch.send(spec.BasicConsume(queue=q, consumer_tag="c", no_ack=True, no_wait=True))
    ch.publish(x, "k", "via nowait topology")
    await ch.receive()
    await ch.call(QueueDeclare(queue=q, passive=True))
    ch.send(spec.BasicCancel(consumer_tag="c", no_wait=True))
    ch.send(spec.QueuePurge(queue=q, no_wait=True))
    ch.send(spec.ConfirmSelect(nowait=True))
    ch.confirming = True  # no confirm.select-ok with nowait
    ch.publish(x, "k", "confirmed")
    await ch.confirms(1)
    # Errors still close the channel with nowait.
    ch.send(spec.QueueDelete(queue=ctx.q("missing-or-not"), no_wait=True))
    ch.send(spec.ExchangeDeclare(exchange=ctx.x("missing"), passive=True, no_wait=True))
    await ch.receive()


@scenario(E("drained", queue="q", bodies=["once"]))
async def exchange_binding_cycle(ctx: Context) -> None:
    ch = await ctx.channel()
    a, b, q = ctx.x("a"), ctx.x("b"), ctx.q("q")
    await ch.call(spec.ExchangeDeclare(exchange=a, type="fanout"))
    await ch.call(spec.ExchangeDeclare(exchange=b, type="fanout"))
    await ch.call(spec.ExchangeBind(destination=b, source=a))
    await ch.call(spec.ExchangeBind(destination=a, source=b))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=a))
    await ch.call(spec.QueueBind(queue=q, exchange=b))
    # The cycle is followed once; the queue reached twice gets one copy.
    ch.publish(a, "", "once")
    await ch.drain(q)


@scenario(E("channel.close", reply_code=406, class_id=50, method_id=20))
async def headers_invalid_x_match(ctx: Context) -> None:
    ch = await ctx.channel()
    x, q = ctx.x("h"), ctx.q("q")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="headers"))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x, arguments={"x-match": "most"}))
