"""Scenarios: how a queue picks among its consumers (single active consumer, consumer
priorities)."""

from __future__ import annotations

from kiltmq.protocol import spec

from .context import Context
from .registry import E, scenario


@scenario(
    E("queue.declare-ok", message_count=1, consumer_count=4),
    E("basic.deliver", consumer_tag="first", body="m1"),
    E("basic.deliver", consumer_tag="high", body="m2"),
    E("basic.deliver", consumer_tag="high2", body="m3"),
    E("basic.deliver", consumer_tag="low", body="m4"),
)
async def single_active_consumer_with_priorities(ctx: Context) -> None:
    # The first consumer stays the active one, even at its prefetch limit and with
    # higher priority consumers waiting; when it goes, the highest priority consumer
    # takes over, the earliest registered of equals.
    conn = await ctx.connect()
    q = ctx.q("sacprio")
    pub = await conn.channel()
    await pub.call(
        spec.QueueDeclare(queue=q, exclusive=True, arguments={"x-single-active-consumer": True})
    )
    first, low, high, high2 = [await conn.channel() for _ in range(4)]
    await first.call(spec.BasicQos(prefetch_count=1))
    await first.call(spec.BasicConsume(queue=q, consumer_tag="first"))
    for ch, tag, priority in ((low, "low", 5), (high, "high", 10), (high2, "high2", 10)):
        await ch.call(
            spec.BasicConsume(
                queue=q, consumer_tag=tag, no_ack=True, arguments={"x-priority": priority}
            )
        )
    await pub.call(spec.ConfirmSelect())
    pub.publish("", q, "m0")
    pub.publish("", q, "m1")
    await pub.settle()
    await first.receive()
    await pub.call(spec.QueueDeclare(queue=q, passive=True))  # m1 waits for "first"
    first.send(spec.BasicAck(delivery_tag=1))
    await first.receive()
    await first.call(spec.BasicCancel(consumer_tag="first"))
    for body, ch, tag in (("m2", high, "high"), ("m3", high2, "high2"), ("m4", low, "low")):
        pub.publish("", q, body)
        await pub.settle()
        await ch.receive()
        await ch.call(spec.BasicCancel(consumer_tag=tag))
