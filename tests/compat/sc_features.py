"""Scenarios: RabbitMQ's queue and exchange extensions (arguments, dead-lettering, TTL,
length limits, priorities, alternate exchanges) and lifecycle rules (exclusive,
auto-delete)."""

from __future__ import annotations

from typing import Any

from kiltmq.protocol import BasicProperties, spec

from .context import Context
from .registry import E, scenario

QueueDeclare = spec.QueueDeclare


@scenario(E("queue.declare-ok", queue="excl"))
async def exclusive_queue_is_never_durable(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("excl")
    await ch.call(QueueDeclare(queue=q, exclusive=True, durable=True))
    # RabbitMQ declares exclusive queues non-durable, so both forms are equivalent.
    await ch.call(QueueDeclare(queue=q, exclusive=True, durable=False))
    await ch.call(QueueDeclare(queue=q, exclusive=True, durable=True))
    # amq.* queue names are reserved for the server.
    await ch.call(QueueDeclare(queue="amq.kilt", exclusive=True))


@scenario(E("channel.close", reply_code=404, class_id=50, method_id=10))
async def auto_delete_queue_goes_with_last_consumer(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    q = ctx.q("auto")
    await ch.call(QueueDeclare(queue=q, auto_delete=True))
    # Never consumed: stays.
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="a"))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="b"))
    await ch.call(spec.BasicCancel(consumer_tag="a"))
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.call(spec.BasicCancel(consumer_tag="b"))
    await ch.call(QueueDeclare(queue=q, passive=True))


@scenario(
    E("basic.get-ok", body="bad", exchange="dlx", routing_key="dead"),
    E("drained", queue="dlq", bodies=[]),
)
async def dead_letter_on_reject(ctx: Context) -> None:
    ch = await ctx.channel()
    dlx, dlq, q = ctx.x("dlx"), ctx.q("dlq"), ctx.q("work")
    await ch.call(spec.ExchangeDeclare(exchange=dlx, type="fanout"))
    await ch.call(QueueDeclare(queue=dlq, exclusive=True))
    await ch.call(spec.QueueBind(queue=dlq, exchange=dlx))
    await ch.call(
        QueueDeclare(
            queue=q,
            exclusive=True,
            arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead"},
        )
    )
    await ch.call(spec.ConfirmSelect())
    ch.publish("", q, "bad", headers={"origin": "test"})
    ch.publish("", q, "requeued")
    ch.publish("", q, "nacked")
    await ch.settle()
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=1, requeue=False))
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=2, requeue=True))  # requeued: not dead
    await ch.get(q)
    await ch.get(q)
    ch.send(spec.BasicNack(delivery_tag=4, multiple=True, requeue=False))
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.get(dlq, no_ack=True)
    await ch.get(dlq, no_ack=True)
    await ch.get(dlq, no_ack=True)
    await ch.drain(dlq)


@scenario(
    E("basic.get-ok", body="gone", exchange="dlx", routing_key="q"),
    E("drained", queue="q", bodies=["kept"]),
)
async def message_ttl_zero_expires(ctx: Context) -> None:
    ch = await ctx.channel()
    dlx, dlq, q = ctx.x("dlx"), ctx.q("dlq"), ctx.q("q")
    await ch.call(spec.ExchangeDeclare(exchange=dlx, type="fanout"))
    await ch.call(QueueDeclare(queue=dlq, exclusive=True))
    await ch.call(spec.QueueBind(queue=dlq, exchange=dlx))
    await ch.call(QueueDeclare(queue=q, exclusive=True, arguments={"x-dead-letter-exchange": dlx}))
    await ch.call(spec.ConfirmSelect())
    # Per-message expiration 0: expires on arrival (no consumer waiting).
    ch.publish("", q, "gone", properties=BasicProperties(expiration="0"))
    ch.publish("", q, "kept", properties=BasicProperties(expiration="600000"))
    await ch.settle()
    await ch.drain(q)
    await ch.get(dlq, no_ack=True)
    # A queue TTL of 0 does the same for every message.
    q0 = ctx.q("q0")
    await ch.call(QueueDeclare(queue=q0, exclusive=True, arguments={"x-message-ttl": 0}))
    ch.publish("", q0, "also gone")
    await ch.settle()
    await ch.call(QueueDeclare(queue=q0, passive=True))
    # An invalid expiration is refused.
    ch.publish("", q, "bad", properties=BasicProperties(expiration="soon"))
    await ch.receive()


@scenario(
    E("drained", queue="head", bodies=["m2", "m3"]),
    E("confirms", acked=[4, 5], nacked=[6]),
)
async def max_length_overflow(ctx: Context) -> None:
    ch = await ctx.channel()
    head, reject = ctx.q("head"), ctx.q("reject")
    await ch.call(QueueDeclare(queue=head, exclusive=True, arguments={"x-max-length": 2}))
    await ch.call(
        QueueDeclare(
            queue=reject,
            exclusive=True,
            arguments={"x-max-length": 2, "x-overflow": "reject-publish"},
        )
    )
    await ch.call(spec.ConfirmSelect())
    for i in range(1, 4):
        ch.publish("", head, f"m{i}")
    await ch.confirms(3)
    for i in range(1, 4):
        ch.publish("", reject, f"r{i}")
    await ch.confirms(6)
    await ch.drain(head)
    await ch.drain(reject)


# Priorities above x-max-priority count as the maximum: p9 is a 5, after p5a.
@scenario(E("drained", queue="prio", bodies=["p5a", "p9", "p5b", "none", "p0"]))
async def priority_queue(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("prio")
    await ch.call(QueueDeclare(queue=q, exclusive=True, arguments={"x-max-priority": 5}))
    await ch.call(spec.ConfirmSelect())
    for body, priority in (("none", None), ("p0", 0), ("p5a", 5), ("p9", 9), ("p5b", 5)):
        ch.publish("", q, body, properties=BasicProperties(priority=priority))
    await ch.settle()
    await ch.drain(q)


@scenario(E("drained", queue="ae-q", bodies=["unroutable"]))
async def alternate_exchange(ctx: Context) -> None:
    ch = await ctx.channel()
    ae, x, aeq, q = ctx.x("ae"), ctx.x("main"), ctx.q("ae-q"), ctx.q("main-q")
    await ch.call(spec.ExchangeDeclare(exchange=ae, type="fanout"))
    await ch.call(QueueDeclare(queue=aeq, exclusive=True))
    await ch.call(spec.QueueBind(queue=aeq, exchange=ae))
    await ch.call(
        spec.ExchangeDeclare(exchange=x, type="direct", arguments={"alternate-exchange": ae})
    )
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x, routing_key="known"))
    await ch.call(spec.ConfirmSelect())
    ch.publish(x, "known", "routed")
    ch.publish(x, "other", "unroutable", mandatory=True)  # the AE takes it: no return
    await ch.settle()
    await ch.drain(q)
    await ch.drain(aeq)


@scenario(E("channel.close", reply_code=406, class_id=50, method_id=10))
async def invalid_queue_arguments(ctx: Context) -> None:
    conn = await ctx.connect()
    invalid: list[dict[str, Any]] = [
        {"x-max-length": -1},
        {"x-message-ttl": "ten"},
        {"x-overflow": "explode"},
        {"x-max-priority": 300},
        {"x-expires": 0},
        {"x-dead-letter-routing-key": "k"},
    ]
    for i, arguments in enumerate(invalid):
        ch = await conn.channel()
        await ch.call(QueueDeclare(queue=ctx.q(f"bad{i}"), exclusive=True, arguments=arguments))
    # Unknown x- arguments are accepted and kept for equivalence checks.
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=ctx.q("ok"), exclusive=True, arguments={"x-kilt": 1}))


@scenario(
    E("basic.deliver", consumer_tag="first", body="m0"),
    E("basic.deliver", consumer_tag="second", body="m2"),
)
async def single_active_consumer(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("sac")
    pub = await conn.channel()
    await pub.call(
        QueueDeclare(queue=q, exclusive=True, arguments={"x-single-active-consumer": True})
    )
    first, second = await conn.channel(), await conn.channel()
    await first.call(spec.BasicConsume(queue=q, consumer_tag="first", no_ack=True))
    await second.call(spec.BasicConsume(queue=q, consumer_tag="second", no_ack=True))
    await pub.call(spec.ConfirmSelect())
    pub.publish("", q, "m0")
    pub.publish("", q, "m1")
    await pub.settle()
    await first.receive_n(2)
    await first.call(spec.BasicCancel(consumer_tag="first"))
    pub.publish("", q, "m2")
    await pub.settle()
    await second.receive()


@scenario(
    E("basic.get-ok", body="m1", exchange="dlx", routing_key="head"),
    E("drained", queue="head", bodies=["m2", "m3"]),
)
async def max_length_dead_letters_head(ctx: Context) -> None:
    ch = await ctx.channel()
    dlx, dlq, head = ctx.x("dlx"), ctx.q("dlq"), ctx.q("head")
    await ch.call(spec.ExchangeDeclare(exchange=dlx, type="fanout"))
    await ch.call(QueueDeclare(queue=dlq, exclusive=True))
    await ch.call(spec.QueueBind(queue=dlq, exchange=dlx))
    await ch.call(
        QueueDeclare(
            queue=head,
            exclusive=True,
            arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx},
        )
    )
    await ch.call(spec.ConfirmSelect())
    for i in range(1, 4):
        ch.publish("", head, f"m{i}")
    await ch.settle()
    await ch.get(dlq, no_ack=True)
    await ch.drain(head)
