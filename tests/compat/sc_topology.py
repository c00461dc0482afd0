"""Scenarios: exchanges, queues and bindings (declare, delete, bind, purge, equivalence)."""

from __future__ import annotations

from kiltmq.protocol import MethodReceived, spec

from .context import Context
from .registry import E, scenario

ExchangeDeclare = spec.ExchangeDeclare
QueueDeclare = spec.QueueDeclare
QueueDeclareOk = spec.QueueDeclareOk


@scenario(E("exchange.declare-ok"))
async def exchange_declare_all_types(ctx: Context) -> None:
    ch = await ctx.channel()
    for kind in ("direct", "fanout", "topic", "headers"):
        name = ctx.x(kind)
        await ch.call(ExchangeDeclare(exchange=name, type=kind, auto_delete=True))
        # The same declaration again is fine, and a passive one ignores the type.
        await ch.call(ExchangeDeclare(exchange=name, type=kind, auto_delete=True))
        await ch.call(ExchangeDeclare(exchange=name, type="fanout", passive=True))
    for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"):
        await ch.call(ExchangeDeclare(exchange=name, passive=True))
    await ch.call(ExchangeDeclare(exchange="", passive=True))


@scenario(E("channel.close", reply_code=404, class_id=40, method_id=10))
async def exchange_declare_passive_missing(ctx: Context) -> None:
    ch = await ctx.channel()
    await ch.call(ExchangeDeclare(exchange=ctx.x("missing"), passive=True))
    # The channel is gone; another on the same connection works.
    ch2 = await ch.conn.channel()
    await ch2.call(ExchangeDeclare(exchange="amq.topic", passive=True))


@scenario(E("channel.close", reply_code=406))
async def exchange_redeclare_inequivalent(ctx: Context) -> None:
    conn = await ctx.connect()
    name = ctx.x("eq")
    ch = await conn.channel()
    await ch.call(ExchangeDeclare(exchange=name, type="direct"))
    for changed in (
        ExchangeDeclare(exchange=name, type="fanout"),
        ExchangeDeclare(exchange=name, type="direct", durable=True),
        ExchangeDeclare(exchange=name, type="direct", auto_delete=True),
        ExchangeDeclare(exchange=name, type="direct", internal=True),
        ExchangeDeclare(
            exchange=name, type="direct", arguments={"alternate-exchange": "amq.fanout"}
        ),
    ):
        ch = await conn.channel()
        await ch.call(changed)
    ch = await conn.channel()
    await ch.call(spec.ExchangeDelete(exchange=name))


@scenario(E("channel.close", reply_code=403))
async def exchange_declare_reserved_prefix(ctx: Context) -> None:
    conn = await ctx.connect()
    for name in ("amq.kilt", "amq.direct"):
        ch = await conn.channel()
        await ch.call(ExchangeDeclare(exchange=name, type="direct"))
    ch = await conn.channel()
    await ch.call(ExchangeDeclare(exchange="amq.kilt", type="direct", passive=True))
    ch = await conn.channel()
    await ch.call(spec.ExchangeDelete(exchange="amq.direct"))
    ch = await conn.channel()
    await ch.call(spec.ExchangeDelete(exchange=""))


@scenario(E("connection.close", reply_code=503, class_id=40, method_id=10))
async def exchange_declare_unknown_type(ctx: Context) -> None:
    ch = await ctx.channel()
    await ch.call(ExchangeDeclare(exchange=ctx.x("odd"), type="kilt"))
    await ch.conn.wait_eof()


@scenario(E("channel.close", reply_code=403, class_id=60, method_id=40))
async def exchange_internal_publish(ctx: Context) -> None:
    ch = await ctx.channel()
    inner = ctx.x("internal")
    q = ctx.q("q")
    await ch.call(ExchangeDeclare(exchange=inner, type="fanout", internal=True))
    await ch.call(QueueDeclare(queue=q))
    await ch.call(spec.QueueBind(queue=q, exchange=inner))
    # An internal exchange still routes what reaches it through an exchange binding.
    outer = ctx.x("outer")
    await ch.call(ExchangeDeclare(exchange=outer, type="fanout"))
    await ch.call(spec.ExchangeBind(destination=inner, source=outer))
    ch.publish(outer, "", "via outer")
    await ch.drain(q)
    ch.publish(inner, "", "direct to internal")
    await ch.receive()


@scenario(E("channel.close", reply_code=406, class_id=40, method_id=20))
async def exchange_delete_if_unused(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    x = ctx.x("x")
    q = ctx.q("q")
    await ch.call(ExchangeDeclare(exchange=x, type="direct"))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x, routing_key="k"))
    await ch.call(spec.ExchangeDelete(exchange=x, if_unused=True))
    ch = await conn.channel()
    await ch.call(spec.QueueUnbind(queue=q, exchange=x, routing_key="k"))
    await ch.call(spec.ExchangeDelete(exchange=x, if_unused=True))
    await ch.call(ExchangeDeclare(exchange=x, passive=True))


@scenario(E("exchange.delete-ok"))
async def exchange_delete_missing_and_bound(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.call(spec.ExchangeDelete(exchange=ctx.x("never-declared")))
    # Deleting a bound exchange removes its bindings: the queue stays, unbound.
    x = ctx.x("x")
    q = ctx.q("q")
    await ch.call(ExchangeDeclare(exchange=x, type="fanout"))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x))
    await ch.call(spec.ExchangeDelete(exchange=x))
    await ch.call(ExchangeDeclare(exchange=x, type="fanout"))
    ch.publish(x, "", "after re-declare")
    await ch.drain(q)


@scenario(E("drained", bodies=["one"]), E("drained", bodies=[]))
async def exchange_to_exchange_bindings(ctx: Context) -> None:
    ch = await ctx.channel()
    src = ctx.x("src")
    mid = ctx.x("mid")
    q = ctx.q("q")
    await ch.call(ExchangeDeclare(exchange=src, type="topic"))
    await ch.call(ExchangeDeclare(exchange=mid, type="direct"))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=mid, routing_key="a.b"))
    await ch.call(spec.ExchangeBind(destination=mid, source=src, routing_key="a.*"))
    ch.publish(src, "a.b", "one")
    ch.publish(src, "a.c", "routed to mid, no queue binding there")
    ch.publish(src, "b.b", "not routed at all")
    await ch.drain(q)
    await ch.call(spec.ExchangeUnbind(destination=mid, source=src, routing_key="a.*"))
    ch.publish(src, "a.b", "after unbind")
    await ch.drain(q)
    # Unbinding what is not bound is fine; binding from a missing source is 404.
    await ch.call(spec.ExchangeUnbind(destination=mid, source=src, routing_key="zzz"))
    await ch.call(spec.ExchangeBind(destination=mid, source=ctx.x("missing")))


@scenario(E("drained", bodies=["m"]), E("channel.close", reply_code=403))
async def default_exchange(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    ch.publish("", q, "m")
    await ch.drain(q)
    await ch.call(spec.QueueBind(queue=q, exchange="", routing_key="x"))
    ch = await conn.channel()
    await ch.call(spec.QueueUnbind(queue=q, exchange="", routing_key=q))


@scenario(E("queue.declare-ok", queue="amq.gen-#1", message_count=0, consumer_count=0))
async def queue_declare_server_named(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    reply = await ch.call(QueueDeclare(queue="", exclusive=True))
    await ch.call(QueueDeclare(queue="", exclusive=True))
    assert isinstance(reply, MethodReceived)
    assert isinstance(reply.method, QueueDeclareOk)
    name = reply.method.queue
    await ch.call(QueueDeclare(queue=name, passive=True))
    # The empty name means "the last queue declared on this channel".
    await ch.call(spec.ConfirmSelect())
    ch.publish("", name, "to the generated queue")
    await ch.settle()
    await ch.call(spec.QueuePurge(queue=""))
    await ch.call(QueueDeclare(queue="", passive=True))


@scenario(E("channel.close", reply_code=404, class_id=50, method_id=10))
async def queue_declare_passive_missing(ctx: Context) -> None:
    ch = await ctx.channel()
    await ch.call(QueueDeclare(queue=ctx.q("missing"), passive=True))


@scenario(E("channel.close", reply_code=406))
async def queue_redeclare_inequivalent(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=q, auto_delete=False, arguments={"x-message-ttl": 60000}))
    for changed in (
        QueueDeclare(queue=q, durable=True, arguments={"x-message-ttl": 60000}),
        QueueDeclare(queue=q, auto_delete=True, arguments={"x-message-ttl": 60000}),
        QueueDeclare(queue=q, arguments={"x-message-ttl": 1000}),
        QueueDeclare(queue=q, arguments={"x-max-length": 10, "x-message-ttl": 60000}),
        QueueDeclare(queue=q),
        QueueDeclare(queue=q, exclusive=True, arguments={"x-message-ttl": 60000}),
    ):
        ch = await conn.channel()
        await ch.call(changed)
    ch = await conn.channel()
    # A passive declare ignores every other field.
    await ch.call(QueueDeclare(queue=q, passive=True, durable=True, exclusive=True))
    await ch.call(QueueDeclare(queue=q, arguments={"x-message-ttl": 60000}))


@scenario(E("channel.close", reply_code=405))
async def queue_exclusive_other_connection(ctx: Context) -> None:
    owner = await ctx.connect("owner")
    q = ctx.q("excl")
    och = await owner.channel()
    await och.call(QueueDeclare(queue=q, exclusive=True))
    other = await ctx.connect("other")
    for method in (
        QueueDeclare(queue=q, passive=True),
        QueueDeclare(queue=q, exclusive=True),
        QueueDeclare(queue=q),
        spec.BasicConsume(queue=q),
        spec.QueueBind(queue=q, exchange="amq.fanout"),
        spec.QueuePurge(queue=q),
        spec.BasicGet(queue=q),
        spec.QueueDelete(queue=q),
    ):
        ch = await other.channel()
        await ch.call(method)
    # Publishing into it from elsewhere is allowed.
    ch = await other.channel()
    await ch.call(spec.ConfirmSelect())
    ch.publish("", q, "from other")
    await ch.settle()
    await och.call(QueueDeclare(queue=q, passive=True))
    # The owner closes: the queue goes with it.
    await owner.close()
    await ch.call(QueueDeclare(queue=q, passive=True))


@scenario(E("channel.close", reply_code=404, class_id=50, method_id=20))
async def queue_bind_missing(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=ctx.x("nope"), routing_key="k"))
    ch = await conn.channel()
    await ch.call(spec.QueueBind(queue=ctx.q("nope"), exchange="amq.direct", routing_key="k"))
    ch = await conn.channel()
    await ch.call(spec.QueueBind(queue=ctx.q("nope"), exchange=ctx.x("nope")))
    ch = await conn.channel()
    await ch.call(spec.QueueUnbind(queue=q, exchange=ctx.x("nope"), routing_key="k"))
    ch = await conn.channel()
    # Unbinding a binding that does not exist between existing ends is fine.
    await ch.call(spec.QueueUnbind(queue=q, exchange="amq.direct", routing_key="never"))


@scenario(E("queue.purge-ok", message_count=3), E("queue.purge-ok", message_count=0))
async def queue_purge_counts(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.ConfirmSelect())
    for i in range(3):
        ch.publish("", q, f"m{i}")
    await ch.settle()
    await ch.call(spec.QueuePurge(queue=q))
    await ch.call(spec.QueuePurge(queue=q))
    # Unacknowledged messages are not purged.
    for i in range(2):
        ch.publish("", q, f"n{i}")
    await ch.settle()
    await ch.get(q)
    await ch.call(spec.QueuePurge(queue=q))
    await ch.call(spec.BasicRecover(requeue=True))
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.call(spec.QueuePurge(queue=ctx.q("missing")))


@scenario(
    E("channel.close", reply_code=406, class_id=50, method_id=40),
    E("queue.delete-ok", message_count=2),
)
async def queue_delete_conditions(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=q))
    await ch.call(spec.ConfirmSelect())
    ch.publish("", q, "a")
    ch.publish("", q, "b")
    await ch.settle()
    await ch.call(spec.QueueDelete(queue=q, if_empty=True))
    ch = await conn.channel()
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="holder", no_ack=False))
    await ch.receive_n(2)
    other = await conn.channel()
    await other.call(spec.QueueDelete(queue=q, if_unused=True))
    await ch.call(spec.BasicCancel(consumer_tag="holder"))
    await ch.call(spec.BasicRecover(requeue=True))
    other = await conn.channel()
    await other.call(spec.QueueDelete(queue=q, if_unused=True))
    await other.call(spec.QueueDelete(queue=ctx.q("never-declared")))


@scenario(
    E("queue.declare-ok", message_count=4, consumer_count=0),
    E("queue.declare-ok", message_count=2, consumer_count=1),
)
async def queue_declare_counts(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.ConfirmSelect())
    for i in range(4):
        ch.publish("", q, f"m{i}")
    await ch.settle()
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.call(spec.BasicQos(prefetch_count=2))
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c"))
    await ch.receive_n(2)
    # Ready messages only: the two delivered and unacknowledged are not counted.
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.BasicCancel(consumer_tag="c"))
    await ch.call(QueueDeclare(queue=q, passive=True))


@scenario(E("channel.close", reply_code=404, class_id=60, method_id=20))
async def consume_missing_queue(ctx: Context) -> None:
    ch = await ctx.channel()
    await ch.call(spec.BasicConsume(queue=ctx.q("missing")))


@scenario(
    E("basic.get-empty"),
    E("basic.get-ok", delivery_tag=1, message_count=1),
    E("channel.close", reply_code=404, class_id=60, method_id=70),
)
async def basic_get(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.get(q)
    ch.publish("", q, "first")
    ch.publish("", q, "second")
    await ch.get(q)
    await ch.get(q, no_ack=True)
    await ch.get(q)
    ch.send(spec.BasicAck(delivery_tag=1))
    await ch.get(ctx.q("missing"))


@scenario(E("channel.close", reply_code=404, class_id=40, method_id=10))
async def exchange_auto_delete(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    x, q = ctx.x("auto"), ctx.q("q")
    await ch.call(ExchangeDeclare(exchange=x, type="fanout", auto_delete=True))
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    # Never bound: stays.
    await ch.call(ExchangeDeclare(exchange=x, passive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x, routing_key="a"))
    await ch.call(spec.QueueBind(queue=q, exchange=x, routing_key="b"))
    await ch.call(spec.QueueUnbind(queue=q, exchange=x, routing_key="a"))
    await ch.call(ExchangeDeclare(exchange=x, passive=True))
    # Its last binding gone, the exchange goes too.
    await ch.call(spec.QueueUnbind(queue=q, exchange=x, routing_key="b"))
    await ch.call(ExchangeDeclare(exchange=x, passive=True))
