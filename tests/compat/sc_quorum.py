"""Scenarios: queue types (x-queue-type) and quorum queues as RabbitMQ 3.10 has them."""

from __future__ import annotations

from typing import Any

from kiltmq.protocol import BasicProperties, spec

from .context import Context
from .registry import E, scenario

QueueDeclare = spec.QueueDeclare
QUORUM = {"x-queue-type": "quorum"}


@scenario(
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - invalid property "
      "'non-durable' for queue 'd1' in vhost '/'"),
    E("queue.declare-ok", queue="d5"),
)
async def queue_types_refused_at_declare(ctx: Context) -> None:
    # Quorum and stream queues are durable, named by the client, and take only their own
    # arguments; any other type is unknown.
    conn = await ctx.connect()
    tries: list[dict[str, Any]] = [
        {"durable": False},
        {"durable": True, "exclusive": True},
        {"durable": True, "auto_delete": True},
        {"durable": True, "exclusive": True, "auto_delete": True},
        {"durable": True, "arguments": {"x-queue-type": "classic"}},
        {"durable": True, "arguments": {"x-queue-type": "foo"}},
        {"durable": True, "arguments": {"x-queue-type": 1}},
        {"durable": False, "arguments": {"x-queue-type": "foo"}},
        {"durable": True, "arguments": {**QUORUM, "x-max-priority": 5}},
        {"durable": True, "arguments": {**QUORUM, "x-max-priority": "bad"}},
        {"durable": True, "arguments": {**QUORUM, "x-queue-mode": "lazy"}},
        {"durable": True, "arguments": {**QUORUM, "x-max-age": "1h"}},
        {"durable": True, "arguments": {**QUORUM, "x-queue-master-locator": "min-masters"}},
        {"durable": True, "arguments": {**QUORUM, "x-initial-cluster-size": 1}},
        {"durable": True, "arguments": {**QUORUM, "x-stream-max-segment-size-bytes": 9}},
        {"durable": False, "arguments": {**QUORUM, "x-max-priority": 5}},
        {"durable": True, "arguments": {**QUORUM, "x-dead-letter-strategy": "bogus"}},
        {"durable": True, "arguments": {**QUORUM, "x-overflow": "reject-publish-dlx"}},
        {"durable": True, "arguments": {**QUORUM, "x-dead-letter-strategy": "at-least-once"}},
        {"durable": True, "arguments": {**QUORUM, "x-delivery-limit": 3, "x-expires": 60000,
                                        "x-message-ttl": 60000, "x-foo": 1,
                                        "x-single-active-consumer": True,
                                        "x-quorum-initial-group-size": 1}},
    ]
    for number, kwargs in enumerate(tries, 1):
        ch = await conn.channel()
        kw = dict(kwargs)
        arguments = kw.pop("arguments", QUORUM)
        await ch.call(QueueDeclare(queue=ctx.q(f"d{number}"), arguments=arguments, **kw))
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue="", durable=True, arguments=QUORUM))


@scenario(
    E("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED - inequivalent arg "
      "'x-queue-type' for queue 'q' in vhost '/': received none but current is the value "
      "'quorum' of type 'longstr'"),
)
async def queue_type_redeclared(ctx: Context) -> None:
    # Redeclaring needs the same type; no type and "classic" are the same.
    conn = await ctx.connect()
    q = ctx.q("q")
    for arguments in (
        QUORUM,
        {},
        {"x-queue-type": "classic"},
        {**QUORUM, "x-delivery-limit": 3},
        {**QUORUM, "x-dead-letter-strategy": "at-least-once"},
    ):
        ch = await conn.channel()
        await ch.call(QueueDeclare(queue=q, durable=True, arguments=QUORUM))
        await ch.call(QueueDeclare(queue=q, durable=True, arguments=arguments))
    for number, (first, second) in enumerate(
        (({}, {"x-queue-type": "classic"}), ({"x-queue-type": "classic"}, {}), ({}, QUORUM))
    ):
        ch = await conn.channel()
        c = ctx.q(f"c{number}")
        await ch.call(QueueDeclare(queue=c, durable=True, arguments=first))
        await ch.call(QueueDeclare(queue=c, durable=True, arguments=second))


@scenario(
    E("basic.get-ok", body="m1", headers={"x-delivery-count": 0}, redelivered=False),
    E("basic.get-ok", body="m2", headers={"x-delivery-count": 0}, redelivered=False),
    E("drained", bodies=["m1", "m3", "m2"]),
)
async def quorum_requeue_goes_to_the_back(ctx: Context) -> None:
    # Without a delivery limit, returned messages go to the back, counted; basic.get-ok
    # always carries x-delivery-count, message priorities are ignored.
    conn = await ctx.connect()
    ch = await conn.channel()
    q = ctx.q("back")
    await ch.call(QueueDeclare(queue=q, durable=True, arguments=QUORUM))
    await ch.call(spec.ConfirmSelect())
    for body in ("m1", "m2", "m3"):
        ch.publish("", q, body, properties=BasicProperties(priority=9 if body == "m3" else 0))
    await ch.settle()
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=1, requeue=True))
    await ch.get(q)
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=3, requeue=True))
    ch.send(spec.BasicReject(delivery_tag=2, requeue=True))
    await ch.drain(q)


@scenario(
    E("basic.deliver", body="m2", delivery_tag=2, redelivered=False),
    E("basic.deliver", body="m1", delivery_tag=4, headers={"h": 1, "x-delivery-count": 1}),
    E("basic.get-ok", body="m2", headers={"x-delivery-count": 2}),
)
async def quorum_consumer_redeliveries(ctx: Context) -> None:
    # A consumer gets x-delivery-count on redeliveries only; nack, recover and a closed
    # channel all count.
    conn = await ctx.connect()
    ch = await conn.channel()
    q = ctx.q("redeliver")
    await ch.call(QueueDeclare(queue=q, durable=True, arguments=QUORUM))
    await ch.call(spec.ConfirmSelect())
    for body in ("m1", "m2", "m3"):
        ch.publish("", q, body, headers={"h": 1} if body == "m1" else None)
    await ch.settle()
    await ch.call(spec.BasicQos(prefetch_count=1))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c"))
    await ch.receive()
    for tag in (1, 2, 3):
        ch.send(spec.BasicNack(delivery_tag=tag, requeue=True))
        await ch.receive()
    await ch.call(spec.BasicRecover(requeue=True))
    await ch.receive()
    await ch.close()
    ctx.check(
        await ctx.wait_counts(q, messages=3, consumers=0), "the closed channel's message returns"
    )
    other = await conn.channel()
    await other.call(QueueDeclare(queue=q, passive=True))
    await other.get(q)
    await other.get(q)
    await other.get(q)


@scenario(
    E("basic.get-ok", body="m2", routing_key="dlq"),
    E("drained", bodies=["m1"]),
    E("basic.get-ok", body="m2", headers={"x-delivery-count": 1}),
)
async def quorum_delivery_limit(ctx: Context) -> None:
    # Past x-delivery-limit a message is dead-lettered (reason delivery_limit), or
    # dropped without a dead-letter exchange; with a limit, returned messages come
    # before those never delivered.
    conn = await ctx.connect()
    ch = await conn.channel()
    q, dlq, q0 = ctx.q("limited"), ctx.q("dlq"), ctx.q("zero")
    await ch.call(QueueDeclare(queue=dlq, durable=True))
    await ch.call(
        QueueDeclare(queue=q, durable=True, arguments={
            **QUORUM, "x-delivery-limit": 1, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dlq,
        })
    )
    await ch.call(spec.ConfirmSelect())
    ch.publish("", q, "m1", headers={"h": 1})
    ch.publish("", q, "m2")
    ch.publish("", q, "m3")
    await ch.settle()
    await ch.get(q)
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=2, requeue=True))
    ch.send(spec.BasicReject(delivery_tag=1, requeue=True))
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=3, requeue=True))
    await ch.get(q)
    await ch.get(q)
    ch.send(spec.BasicNack(delivery_tag=0, multiple=True, requeue=True))
    await ch.drain(q)
    await ch.get(dlq, no_ack=True)
    await ch.drain(dlq)
    await ch.call(QueueDeclare(queue=q0, durable=True, arguments={**QUORUM, "x-delivery-limit": 0}))
    ch.publish("", q0, "x")
    await ch.settle()
    await ch.get(q0)
    ch.send(spec.BasicReject(delivery_tag=9, requeue=True))
    await ch.get(q0)


@scenario(
    E("confirms", acked=[], nacked=[4]),
    E("confirms", acked=[8], nacked=[]),
)
async def quorum_reject_publish(ctx: Context) -> None:
    # reject-publish: refused once over the limit, taken again at 80 % of it;
    # reject-publish-dlx is drop-head.
    conn = await ctx.connect()
    ch = await conn.channel()
    q, dlx_q = ctx.q("reject"), ctx.q("dlx")
    await ch.call(QueueDeclare(queue=q, durable=True, arguments={
        **QUORUM, "x-max-length": 2, "x-overflow": "reject-publish"}))
    await ch.call(spec.ConfirmSelect())
    for body in ("m1", "m2", "m3", "m4", "m5"):
        ch.publish("", q, body)
        await ch.settle()
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.get(q, no_ack=True)
    ch.publish("", q, "m6")
    await ch.settle()
    await ch.get(q, no_ack=True)
    ch.publish("", q, "m7")
    await ch.settle()
    ch.publish("", q, "m8")
    await ch.settle()
    await ch.drain(q)
    await ch.call(QueueDeclare(queue=dlx_q, durable=True, arguments={
        **QUORUM, "x-max-length-bytes": 4, "x-overflow": "reject-publish-dlx"}))
    for body in ("m1", "m2", "m3"):
        ch.publish("", dlx_q, body)
    await ch.settle()
    await ch.drain(dlx_q)


@scenario(
    E("connection.close", reply_code=540, class_id=60, method_id=20),
)
async def quorum_refuses_global_qos(ctx: Context) -> None:
    # A global prefetch of 0 is no limit, so allowed; a real one is not implemented.
    conn = await ctx.connect()
    ch = await conn.channel()
    q = ctx.q("global")
    await ch.call(QueueDeclare(queue=q, durable=True, arguments=QUORUM))
    await ch.call(spec.BasicQos(prefetch_count=0, global_=True))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="zero"))
    await ch.call(spec.BasicQos(prefetch_count=5, global_=True))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="five"))


@scenario(
    E("confirms", acked=[3], nacked=[]),
    E("confirms", acked=[], nacked=[4]),
    E("basic.deliver", body="m2", routing_key="k"),
    E("confirms", acked=[4], nacked=[]),
    E("confirms", acked=[], nacked=[5]),
)
async def quorum_dead_letter_at_least_once(ctx: Context) -> None:
    # at-least-once (with reject-publish) keeps a dead message in its queue while its
    # dead-letter exchange routes it nowhere, counted towards the length limit but not
    # delivered; at-most-once drops it. Once routed, a dead message moves with x-death.
    # (No queue.declare-ok after a basic.get here: RabbitMQ counts a consumer for the
    # get until the settlement has gone through, a race.)
    conn = await ctx.connect()
    ch = await conn.channel()
    dlx, dlq = ctx.x("dlx"), ctx.q("dlq")
    await ch.call(spec.ExchangeDeclare(exchange=dlx, type="fanout"))
    limits = {**QUORUM, "x-max-length": 2, "x-overflow": "reject-publish",
              "x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "k"}
    kept = ctx.q("kept")
    await ch.call(QueueDeclare(queue=kept, durable=True, arguments={
        **limits, "x-dead-letter-strategy": "at-least-once"}))
    await ch.call(spec.ConfirmSelect())
    for body in ("m1", "m2"):
        ch.publish("", kept, body)
    await ch.settle()
    await ch.get(kept)
    ch.send(spec.BasicReject(delivery_tag=1, requeue=False))
    ch.publish("", kept, "m3")
    await ch.settle()
    ch.publish("", kept, "m4")
    await ch.settle()
    await ch.call(QueueDeclare(queue=dlq, durable=True))
    await ch.call(spec.QueueBind(queue=dlq, exchange=dlx))
    watch = await conn.channel()
    await watch.call(spec.BasicConsume(queue=dlq, consumer_tag="dead", no_ack=True))
    await ch.get(kept)
    ch.send(spec.BasicReject(delivery_tag=2, requeue=False))
    await watch.receive()
    await ch.drain(kept)
    other = await conn.channel()
    dropped = ctx.q("dropped")
    await other.call(QueueDeclare(queue=dropped, durable=True, arguments={
        **limits, "x-dead-letter-exchange": ctx.x("nowhere")}))
    await other.call(spec.ConfirmSelect())
    for body in ("m1", "m2"):
        other.publish("", dropped, body)
    await other.settle()
    await other.get(dropped)
    other.send(spec.BasicReject(delivery_tag=1, requeue=False))
    for body in ("m3", "m4", "m5"):
        other.publish("", dropped, body)
        await other.settle()
    await other.drain(dropped)


@scenario(
    E("basic.deliver", consumer_tag="high", body="m0"),
    E("basic.deliver", consumer_tag="high", body="m1"),
    E("basic.deliver", consumer_tag="low", body="m2"),
    E("basic.deliver", consumer_tag="first", body="s0"),
    E("basic.deliver", consumer_tag="second", body="s1"),
)
async def quorum_consumer_priorities_and_single_active(ctx: Context) -> None:
    # Consumer priorities work on quorum queues: the higher takes messages while it has
    # room. With single active consumer the first stays active whatever the priorities,
    # until it goes.
    pub = await ctx.channel()
    await pub.call(spec.ConfirmSelect())
    q, sac = ctx.q("prio"), ctx.q("sac")
    await pub.call(QueueDeclare(queue=q, durable=True, arguments=QUORUM))
    await pub.call(QueueDeclare(queue=sac, durable=True, arguments={
        **QUORUM, "x-single-active-consumer": True}))
    ch = await ctx.channel()
    await ch.call(spec.BasicQos(prefetch_count=2))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="low"))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="high", arguments={"x-priority": 10}))
    for body in ("m0", "m1", "m2", "m3"):
        pub.publish("", q, body)
    await pub.settle()
    await ch.receive_n(4)
    other = await ctx.channel()
    await other.call(spec.BasicQos(prefetch_count=2))
    await other.call(spec.BasicConsume(queue=sac, consumer_tag="first"))
    await other.call(spec.BasicConsume(queue=sac, consumer_tag="second",
                                       arguments={"x-priority": 10}))
    pub.publish("", sac, "s0")
    await pub.settle()
    await other.receive()
    other.send(spec.BasicAck(delivery_tag=1))
    await other.call(spec.BasicCancel(consumer_tag="first"))
    pub.publish("", sac, "s1")
    await pub.settle()
    await other.receive()
