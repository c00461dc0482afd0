"""Scenarios: streams (x-queue-type stream) as RabbitMQ 3.10 serves them over AMQP 0-9-1."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from kiltmq.protocol import ContentReceived, spec

from .context import Context
from .recording import RecordingChannel
from .registry import E, scenario

QueueDeclare = spec.QueueDeclare
STREAM = {"x-queue-type": "stream"}


@scenario(
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-message-ttl' for queue 's2' in vhost '/' of queue type rabbit_stream_queue"),
    E("queue.declare-ok", queue="s1"),
)
async def stream_declare_rules(ctx: Context) -> None:
    conn = await ctx.connect()
    tries: list[dict[str, Any]] = [
        {"x-max-length-bytes": 100_000, "x-max-age": "7D", "x-foo": 1,
         "x-stream-max-segment-size-bytes": 50_000, "x-initial-cluster-size": 1,
         "x-queue-leader-locator": "balanced"},
        {"x-message-ttl": 1},
        {"x-expires": 1000},
        {"x-dead-letter-exchange": "x"},
        {"x-max-length": 3},
        {"x-overflow": "drop-head"},
        {"x-single-active-consumer": True},
        {"x-delivery-limit": 1},
        {"x-queue-mode": "lazy"},
        {"x-max-priority": 1},
        {"x-max-in-memory-length": 1},
        {"x-quorum-initial-group-size": 1},
        {"x-dead-letter-strategy": "at-most-once"},
        {"x-queue-master-locator": "min-masters"},
        {"x-max-age": 5},
        {"x-max-length-bytes": "x"},
    ]
    for number, arguments in enumerate(tries, 1):
        ch = await conn.channel()
        await ch.call(QueueDeclare(queue=ctx.q(f"s{number}"), durable=True,
                                   arguments={**STREAM, **arguments}))
    for kwargs in ({"durable": False}, {"durable": True, "exclusive": True},
                   {"durable": True, "auto_delete": True}):
        ch = await conn.channel()
        await ch.call(QueueDeclare(queue=ctx.q("flags"), arguments=STREAM, **kwargs))
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue="", durable=True, arguments=STREAM))


@scenario(
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - consumer prefetch "
      "count is not set for 'queue 'refuse' in vhost '/''"),
    E("connection.close", reply_code=540, class_id=60, method_id=70),
    E("connection.close", reply_code=540, class_id=60, method_id=20),
)
async def stream_consumers_refused(ctx: Context) -> None:
    # basic.get and no-ack consumers are not implemented (the connection closes);
    # consumers need a prefetch of their own and a valid x-stream-offset.
    q = ctx.q("refuse")
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=q, durable=True, arguments=STREAM))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="no-prefetch"))
    ch = await conn.channel()
    await ch.call(spec.BasicQos(prefetch_count=5, global_=True))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="global-only"))
    for arguments in ({"x-priority": 3}, {"x-stream-offset": "5x"}):
        ch = await conn.channel()
        await ch.call(spec.BasicQos(prefetch_count=5))
        await ch.call(spec.BasicConsume(queue=q, consumer_tag="c", arguments=arguments))
    ch = await conn.channel()
    await ch.call(spec.BasicQos(prefetch_count=5))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="exclusive", exclusive=True))
    for no_ack in (False, True):
        ch = await ctx.channel()
        await ch.get(q, no_ack=no_ack)
    ch = await ctx.channel()
    await ch.call(spec.BasicQos(prefetch_count=5))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="no-ack", no_ack=True))
    ch = await ctx.channel()
    await ch.call(spec.QueuePurge(queue=q))


@scenario(
    E("queue.declare-ok", queue="counted", message_count=0, consumer_count=0),
)
async def stream_declare_ok_counts(ctx: Context) -> None:
    # queue.declare-ok counts neither a stream's messages nor its consumers, passive or
    # not, with consumers attached and reading.
    q = ctx.q("counted")
    pub = await ctx.channel()
    await pub.call(QueueDeclare(queue=q, durable=True, arguments=STREAM))
    await pub.call(spec.ConfirmSelect())
    for body in ("m0", "m1"):
        pub.publish("", q, body)
    await pub.settle()
    readers = [await _consumer(ctx, q, tag, "first") for tag in ("one", "two")]
    for reader in readers:
        await reader.receive_n(2)
    await pub.call(QueueDeclare(queue=q, passive=True))
    await pub.call(QueueDeclare(queue=q, durable=True, arguments=STREAM))


async def _consumer(ctx: Context, q: str, tag: str, offset: Any, prefetch: int = 5
                    ) -> RecordingChannel:
    ch = await ctx.channel()
    await ch.call(spec.BasicQos(prefetch_count=prefetch))
    arguments = {} if offset is None else {"x-stream-offset": offset}
    await ch.call(spec.BasicConsume(queue=q, consumer_tag=tag, arguments=arguments))
    return ch


@scenario(
    E("basic.deliver", consumer_tag="first", body="m1", headers={"h": 1, "x-stream-offset": 1}),
    E("basic.deliver", consumer_tag="last", body="m3"),
    E("basic.deliver", consumer_tag="next", body="m4"),
)
async def stream_offsets_and_independent_consumers(ctx: Context) -> None:
    # Consumers read the log independently from where x-stream-offset says; acks give
    # credit back; the log keeps everything.
    pub = await ctx.channel()
    q = ctx.q("log")
    await pub.call(QueueDeclare(queue=q, durable=True, arguments=STREAM))
    await pub.call(spec.ConfirmSelect())
    for body in ("m0", "m1", "m2"):
        pub.publish("", q, body, headers={"h": 1} if body == "m1" else None)
        await pub.settle()
    first = await _consumer(ctx, q, "first", "first", prefetch=2)
    await first.receive_n(2)
    first.send(spec.BasicAck(delivery_tag=1))
    await first.receive()
    pub.publish("", q, "m3")
    await pub.settle()
    first.send(spec.BasicAck(delivery_tag=3, multiple=True))
    await first.receive()
    readers = [
        await _consumer(ctx, q, tag, offset)
        for tag, offset in (
            ("two", 2), ("last", "last"), ("next", "next"), ("default", None),
            ("minus", -1), ("hour", "1h"),
            ("time", datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)),
        )
    ]
    await readers[0].receive_n(2)
    await readers[1].receive()
    for reader in readers[4:]:
        await reader.receive_n(4)
    pub.publish("", q, "m4")
    await pub.settle()
    for reader in readers:
        await reader.receive()
    await first.receive()


@scenario(
    E("connection.close", reply_code=540, class_id=60, method_id=120),
    E("connection.close", reply_code=540, class_id=60, method_id=90),
)
async def stream_settlement_refused(ctx: Context) -> None:
    pub = await ctx.channel()
    q = ctx.q("settle")
    await pub.call(QueueDeclare(queue=q, durable=True, arguments=STREAM))
    await pub.call(spec.ConfirmSelect())
    pub.publish("", q, "m0")
    await pub.settle()
    for method in (spec.BasicNack(delivery_tag=1, requeue=True),
                   spec.BasicReject(delivery_tag=1, requeue=False)):
        ch = await _consumer(ctx, q, "c", "first")
        await ch.receive()
        ch.send(method)
        await ch.conn.wait_eof()


async def _bodies_from_first(ctx: Context, q: str, last: str) -> list[str]:
    """The bodies a consumer from ``first`` reads up to ``last``, not recorded (offsets
    and how much a segment holds differ: RabbitMQ's segments count its chunk headers)."""
    ch = await _consumer(ctx, q, "reader", "first", prefetch=200)
    bodies: list[str] = []
    while not bodies or bodies[-1] != last:
        item = await ch.conn.read_item(ch.number)
        if not isinstance(item, ContentReceived):
            break
        bodies.append(item.body.decode())
    ch.conn.abort()
    return bodies


@scenario(
    E("the oldest messages are gone", ok=True),
    E("the newest are all kept, in order", ok=True),
)
async def stream_retention_by_size(ctx: Context) -> None:
    # Over x-max-length-bytes, whole old segments go when a new one starts; the log
    # keeps its newest messages. (RabbitMQ applies retention in the background: read
    # again until it has.)
    pub = await ctx.channel()
    q = ctx.q("retained")
    await pub.call(QueueDeclare(queue=q, durable=True, arguments={
        **STREAM, "x-stream-max-segment-size-bytes": 1000, "x-max-length-bytes": 2000}))
    await pub.call(spec.ConfirmSelect())
    for i in range(50):
        pub.publish("", q, f"m{i:02d}" + "x" * 97)
        await pub.settle()
    last = "m49" + "x" * 97
    bodies = await _bodies_from_first(ctx, q, last)
    for _ in range(50):
        if bodies[0] != "m00" + "x" * 97:
            break
        await asyncio.sleep(0.1)
        bodies = await _bodies_from_first(ctx, q, last)
    ctx.check(bodies[0] != "m00" + "x" * 97 and len(bodies) < 50,
              "the oldest messages are gone")
    first = int(bodies[0][1:3])
    ctx.check(bodies == [f"m{i:02d}" + "x" * 97 for i in range(first, 50)],
              "the newest are all kept, in order")


@scenario(
    E("the first messages are gone", ok=True),
    E("every message after the pause is kept", ok=True),
)
async def stream_retention_by_age(ctx: Context) -> None:
    # Segments whose newest message is older than x-max-age go when a new segment starts.
    pub = await ctx.channel()
    q = ctx.q("aged")
    await pub.call(QueueDeclare(queue=q, durable=True, arguments={
        **STREAM, "x-stream-max-segment-size-bytes": 1000, "x-max-age": "1s"}))
    await pub.call(spec.ConfirmSelect())
    for i in range(40):
        if i == 20:
            await asyncio.sleep(2)  # the first twenty age past x-max-age
        pub.publish("", q, f"m{i:02d}" + "x" * 97)
        await pub.settle()
    last = "m39" + "x" * 97
    bodies = await _bodies_from_first(ctx, q, last)
    for _ in range(50):
        if bodies[0] != "m00" + "x" * 97:
            break
        await asyncio.sleep(0.1)
        bodies = await _bodies_from_first(ctx, q, last)
    ctx.check(bodies[0] != "m00" + "x" * 97, "the first messages are gone")
    after = [f"m{i:02d}" + "x" * 97 for i in range(20, 40)]
    ctx.check(bodies[-20:] == after, "every message after the pause is kept")
