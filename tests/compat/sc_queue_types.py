"""Scenarios: what each queue type (classic, quorum, stream) takes of the queue
arguments, and how RabbitMQ 3.10 checks their values."""

from __future__ import annotations

from typing import Any

from kiltmq.protocol import ContentReceived, spec
from kiltmq.protocol.codec import Long

from .context import Context
from .registry import E, scenario

QueueDeclare = spec.QueueDeclare

#: A value of each argument some queue type takes (RabbitMQ 3.10's ``capabilities()``).
ARGUMENTS: dict[str, Any] = {
    "x-expires": 60000,
    "x-message-ttl": 60000,
    "x-dead-letter-exchange": "dlx",
    "x-dead-letter-strategy": "at-most-once",
    "x-max-length": 10,
    "x-max-length-bytes": 100000,
    "x-max-in-memory-length": 10,
    "x-max-in-memory-bytes": 100000,
    "x-max-priority": 5,
    "x-overflow": "drop-head",
    "x-queue-mode": "lazy",
    "x-queue-version": 2,
    "x-single-active-consumer": True,
    "x-queue-master-locator": "min-masters",
    "x-quorum-initial-group-size": 1,
    "x-delivery-limit": 3,
    "x-max-age": "1h",
    "x-stream-max-segment-size-bytes": 1000000,
    "x-initial-cluster-size": 1,
    "x-queue-leader-locator": "balanced",
}


async def _declare_each(ctx: Context, tries: list[tuple[str, dict[str, Any]]]) -> None:
    conn = await ctx.connect()
    for number, (kind, arguments) in enumerate(tries, 1):
        ch = await conn.channel()
        args = dict(arguments) if kind == "classic" else {"x-queue-type": kind, **arguments}
        await ch.call(QueueDeclare(queue=ctx.q(f"d{number}"), durable=True, arguments=args))


@scenario(
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-delivery-limit' for queue 'd16' in vhost '/' of queue type rabbit_classic_queue"),
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-max-age' for queue 'd17' in vhost '/' of queue type rabbit_classic_queue"),
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-queue-mode' for queue 'd31' in vhost '/' of queue type rabbit_quorum_queue"),
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-overflow' for queue 'd50' in vhost '/' of queue type rabbit_stream_queue"),
)
async def queue_arguments_by_type(ctx: Context) -> None:
    # Each type takes its own arguments and refuses the others any type takes (the
    # first of them in the order they came); arguments no type knows are ignored.
    tries = [
        (kind, {arg: value})
        for kind in ("classic", "quorum", "stream")
        for arg, value in ARGUMENTS.items()
    ]
    tries += [
        ("classic", {"x-max-length": 5, "x-max-age": "x", "x-delivery-limit": 1}),
        ("classic", {"x-delivery-limit": 1, "x-max-age": "x"}),
        ("quorum", {"x-max-age": "1h", "x-max-priority": 5}),
        ("stream", {"x-expires": 5, "x-max-age": "1h", "x-foo": 1}),
        # the values of the arguments a type takes are checked before the refusals
        ("classic", {"x-max-age": "x", "x-max-length": "a"}),
        ("quorum", {"x-max-age": "x", "x-overflow": "bogus"}),
    ]
    await _declare_each(ctx, tries)


@scenario(
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-max-age' for queue 'd1' in vhost '/': invalid_max_age"),
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-max-age' for queue 'd2' in vhost '/': invalid_max_age"),
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - Exceeded max value "
      "for x-stream-max-segment-size-bytes"),
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid arg "
      "'x-queue-leader-locator' for queue 'd14' in vhost '/': invalid_queue_locator_arg"),
)
async def queue_argument_values(ctx: Context) -> None:
    # The values RabbitMQ checks, per type; then ages without digits, which make
    # RabbitMQ's check fail with 541 and close the connection.
    tries: list[tuple[str, dict[str, Any]]] = [
        ("stream", {"x-max-age": "5x"}),
        ("stream", {"x-max-age": "0s"}),
        ("stream", {"x-max-age": "10"}),
        ("stream", {"x-max-age": 5}),
        ("stream", {"x-max-age": "1hh"}),
        ("stream", {"x-max-age": "02Y"}),
        ("stream", {"x-stream-max-segment-size-bytes": -1}),
        ("stream", {"x-stream-max-segment-size-bytes": "a"}),
        ("stream", {"x-stream-max-segment-size-bytes": 3000000001}),
        ("stream", {"x-stream-max-segment-size-bytes": 3000000000}),
        ("stream", {"x-initial-cluster-size": 0}),
        ("stream", {"x-initial-cluster-size": -2}),
        ("stream", {"x-initial-cluster-size": "a"}),
        ("stream", {"x-queue-leader-locator": "bogus"}),
        ("stream", {"x-queue-leader-locator": 1}),
        ("stream", {"x-queue-leader-locator": "client-local"}),
        ("stream", {"x-max-length-bytes": -1}),
        ("stream", {"x-expires": 5, "x-max-age": "5x"}),
        ("quorum", {"x-quorum-initial-group-size": 0}),
        ("quorum", {"x-quorum-initial-group-size": "a"}),
        ("quorum", {"x-queue-leader-locator": "random"}),
        ("quorum", {"x-queue-leader-locator": "least-leaders"}),
        ("quorum", {"x-queue-leader-locator": "nearest"}),
        ("quorum", {"x-dead-letter-strategy": 1}),
        ("quorum", {"x-dead-letter-strategy": "bogus"}),
        ("quorum", {"x-max-in-memory-length": -1}),
        ("quorum", {"x-max-in-memory-bytes": "a"}),
        ("quorum", {"x-overflow": "reject-publish-dlx"}),
        ("quorum", {"x-overflow": "bogus"}),
        ("quorum", {"x-overflow": 1}),
        ("quorum", {"x-delivery-limit": "a"}),
        ("quorum", {"x-single-active-consumer": 1}),
        ("quorum", {"x-dead-letter-exchange": 1, "x-max-age": "1h"}),
        ("classic", {"x-queue-mode": "bogus"}),
        ("classic", {"x-queue-mode": 1}),
        ("classic", {"x-queue-version": 3}),
        ("classic", {"x-queue-version": -1}),
        ("classic", {"x-queue-version": 1}),
        ("classic", {"x-single-active-consumer": 1}),
        ("classic", {"x-overflow": 1}),
        ("classic", {"x-max-length": -1}),
        ("classic", {"x-dead-letter-exchange": 1}),
        ("classic", {"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": 1}),
        ("classic", {"x-expires": -1}),
        ("classic", {"x-message-ttl": -1}),
        ("classic", {"x-max-priority": 256}),
    ]
    await _declare_each(ctx, tries)
    for number, age in enumerate(("s", "-1s", ""), 1):
        conn = await ctx.connect()
        ch = await conn.channel()
        await ch.call(QueueDeclare(
            queue=ctx.q(f"e{number}"), durable=True,
            arguments={"x-queue-type": "stream", "x-max-age": age},
        ))


@scenario(
    E("basic.get-ok", body="x", header_types={
        "big": "l", "small": "I",
        "x-death": [{"count": "l", "exchange": "S", "queue": "S", "reason": "S",
                     "routing-keys": ["S"], "time": "T"}] * 2,
        "x-first-death-exchange": "S", "x-first-death-queue": "S",
        "x-first-death-reason": "S",
    }),
    E("basic.get-ok", body="x", headers={"big": 5, "small": 5, "x-death": [
        {"count": 2, "exchange": "", "queue": "cycle", "reason": "rejected",
         "routing-keys": ["cycle"]},
        {"count": 1, "exchange": "", "queue": "other", "reason": "rejected",
         "routing-keys": ["other"]},
    ], "x-first-death-exchange": "", "x-first-death-queue": "other",
        "x-first-death-reason": "rejected"}),
    E("basic.get-ok", body="typed", redelivered=True,
      header_types={"big": "l", "small": "I", "x-delivery-count": "l"}),
    E("basic.deliver", body="typed", header_types={"big": "l", "small": "I",
                                                   "x-stream-offset": "l"}),
)
async def header_field_types(ctx: Context) -> None:
    # The integers the broker writes into headers are 64-bit ('l'): x-death's count,
    # also when a message dies again and another queue's record goes along; the
    # client's own headers keep their types.
    ch = await ctx.channel()
    cycle, other = ctx.q("cycle"), ctx.q("other")
    for queue in (cycle, other):
        await ch.call(QueueDeclare(queue=queue, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": cycle,
        }))
    await ch.call(spec.ConfirmSelect())
    ch.publish("", other, "x", headers={"big": Long(5), "small": 5})
    await ch.settle()
    for queue in (other, cycle, cycle):
        got = await ch.get(queue)
        assert isinstance(got, ContentReceived) and isinstance(got.method, spec.BasicGetOk)
        ch.send(spec.BasicReject(delivery_tag=got.method.delivery_tag, requeue=False))
        await ctx.wait_counts(cycle, messages=1, consumers=0)
    await ch.get(cycle)
    # a quorum queue's x-delivery-count and a stream's x-stream-offset join the
    # client's headers, which keep their types
    quorum, stream = ctx.q("quorum"), ctx.q("stream")
    await ch.call(QueueDeclare(queue=quorum, durable=True, arguments={"x-queue-type": "quorum"}))
    await ch.call(QueueDeclare(queue=stream, durable=True, arguments={"x-queue-type": "stream"}))
    for queue in (quorum, stream):
        ch.publish("", queue, "typed", headers={"big": Long(7), "small": 7})
    await ch.settle()
    got = await ch.get(quorum)
    assert isinstance(got, ContentReceived) and isinstance(got.method, spec.BasicGetOk)
    ch.send(spec.BasicReject(delivery_tag=got.method.delivery_tag, requeue=True))
    await ch.get(quorum)
    reader = await ctx.channel()
    await reader.call(spec.BasicQos(prefetch_count=1))
    await reader.call(spec.BasicConsume(queue=stream, consumer_tag="reader",
                                        arguments={"x-stream-offset": "first"}))
    await reader.receive()
