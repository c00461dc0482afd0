"""Scenarios: acknowledgements, rejections, requeueing, publisher confirms, transactions."""

from __future__ import annotations

from kiltmq.protocol import spec

from .context import Context
from .registry import E, scenario

QueueDeclare = spec.QueueDeclare


@scenario(E("channel.close", reply_code=406, class_id=60, method_id=80))
async def ack_unknown_tag(ctx: Context) -> None:
    ch = await ctx.channel()
    ch.send(spec.BasicAck(delivery_tag=7))
    await ch.receive()


@scenario(E("channel.close", reply_code=406, class_id=60, method_id=80))
async def ack_twice(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    ch.publish("", q, "m")
    await ch.get(q)
    ch.send(spec.BasicAck(delivery_tag=1))
    ch.send(spec.BasicAck(delivery_tag=1))
    await ch.receive()


@scenario(E("channel.close", reply_code=406, class_id=60, method_id=80))
async def ack_multiple_twice(ctx: Context) -> None:
    # Acking a tag again with multiple, while later deliveries are outstanding, is an
    # unknown tag too: a client that acks a delivery before it has all of it may do this.
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    for i in range(3):
        ch.publish("", q, f"m{i}")
    for _ in range(3):
        await ch.get(q)
    ch.send(spec.BasicAck(delivery_tag=2, multiple=True))
    ch.send(spec.BasicAck(delivery_tag=2, multiple=True))
    await ch.receive()


@scenario(E("channel.close", reply_code=406, class_id=60, method_id=80))
async def ack_multiple(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    for i in range(4):
        ch.publish("", q, f"m{i}")
    for _ in range(4):
        await ch.get(q)
    ch.send(spec.BasicAck(delivery_tag=2, multiple=True))
    # Tag 0 with multiple acknowledges everything outstanding.
    ch.send(spec.BasicAck(delivery_tag=0, multiple=True))
    await ch.call(spec.BasicRecover(requeue=True))
    await ch.call(QueueDeclare(queue=q, passive=True))
    ch.send(spec.BasicAck(delivery_tag=3))
    await ch.receive()


@scenario(
    E("basic.get-ok", body="m1", redelivered=True, delivery_tag=4),
    E("channel.close", reply_code=406, class_id=60, method_id=120),
)
async def nack_requeue_order(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    for i in range(1, 5):
        ch.publish("", q, f"m{i}")
    for _ in range(3):
        await ch.get(q)
    # Requeue m1 alone: it goes back to its place at the head.
    ch.send(spec.BasicNack(delivery_tag=1, requeue=True))
    await ch.get(q)
    # Requeue m2 and m3 (tags 2, 3) and drop m1 again (tag 4) ... in one go.
    ch.send(spec.BasicNack(delivery_tag=3, multiple=True, requeue=True))
    await ch.get(q)
    ch.send(spec.BasicNack(delivery_tag=5, requeue=False))
    await ch.drain(q)
    ch.send(spec.BasicNack(delivery_tag=99, requeue=True))
    await ch.receive()


@scenario(
    E("basic.get-ok", body="a", redelivered=True),
    E("channel.close", reply_code=406, class_id=60, method_id=90),
)
async def reject(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    ch.publish("", q, "a")
    ch.publish("", q, "b")
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=1, requeue=True))
    await ch.get(q)
    ch.send(spec.BasicReject(delivery_tag=2, requeue=False))
    await ch.call(QueueDeclare(queue=q, passive=True))
    ch.send(spec.BasicReject(delivery_tag=2, requeue=False))
    await ch.receive()


@scenario(
    E("basic.recover-ok"),
    E("basic.deliver", body="m0", redelivered=True),
    E("connection.close", reply_code=540),
)
async def recover(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    ch.publish("", q, "m0")
    ch.publish("", q, "m1")
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c"))
    await ch.receive_n(2)
    ch.send(spec.BasicAck(delivery_tag=2))
    await ch.call(spec.BasicRecover(requeue=True))
    await ch.receive()
    await ch.call(spec.BasicRecover(requeue=False))
    await ch.conn.wait_eof()


@scenario(E("confirms", acked=[1, 2, 3, 4], nacked=[]), E("basic.return", reply_code=312))
async def confirms(ctx: Context) -> None:
    ch = await ctx.channel()
    q = ctx.q("q")
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.ConfirmSelect())
    await ch.call(spec.ConfirmSelect())  # again: fine
    ch.publish("", q, "a")
    ch.publish("", q, "b")
    ch.publish("amq.direct", "nowhere", "unroutable")
    ch.publish("", q, "c")
    await ch.confirms(4)
    # Unroutable mandatory: the return comes before the ack.
    ch.publish("amq.direct", "nowhere", "returned", mandatory=True)
    await ch.receive()
    await ch.confirms(5)
    await ch.call(QueueDeclare(queue=q, passive=True))


@scenario(
    E("queue.declare-ok", queue="q", message_count=0),
    E("queue.declare-ok", queue="q", message_count=2),
)
async def tx_publish_commit_rollback(ctx: Context) -> None:
    conn = await ctx.connect()
    tx = await conn.channel()
    q = ctx.q("q")
    await tx.call(QueueDeclare(queue=q, exclusive=True))
    await tx.call(spec.TxSelect())
    tx.publish("", q, "t1")
    tx.publish("", q, "t2")
    await tx.call(QueueDeclare(queue=q, passive=True))
    await tx.call(spec.TxCommit())
    await tx.call(QueueDeclare(queue=q, passive=True))
    tx.publish("", q, "t3")
    await tx.call(spec.TxRollback())
    await tx.call(spec.TxCommit())
    await tx.drain(q)
    # Commit with nothing to commit, twice.
    await tx.call(spec.TxCommit())
    await tx.call(spec.TxCommit())


@scenario(E("queue.declare-ok", queue="q", message_count=1))
async def tx_acks(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    setup = await conn.channel()
    await setup.call(QueueDeclare(queue=q, exclusive=True))
    setup.publish("", q, "a")
    setup.publish("", q, "b")
    tx = await conn.channel()
    await tx.call(spec.TxSelect())
    await tx.get(q)
    await tx.get(q)
    tx.send(spec.BasicAck(delivery_tag=1))
    tx.send(spec.BasicReject(delivery_tag=2, requeue=True))
    await tx.call(spec.TxRollback())
    # Nothing happened: both still unacknowledged, none ready.
    await setup.call(QueueDeclare(queue=q, passive=True))
    tx.send(spec.BasicAck(delivery_tag=1))
    tx.send(spec.BasicReject(delivery_tag=2, requeue=True))
    await setup.call(QueueDeclare(queue=q, passive=True))
    await tx.call(spec.TxCommit())
    await setup.call(QueueDeclare(queue=q, passive=True))
    await tx.close()
    await setup.call(QueueDeclare(queue=q, passive=True))


@scenario(
    E("basic.get-ok", body="a", redelivered=True, message_count=1),
    E("basic.get-ok", body="b", redelivered=True, message_count=0),
)
async def tx_settlements_rolled_back_on_close(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    setup = await conn.channel()
    await setup.call(QueueDeclare(queue=q, exclusive=True))
    await setup.call(spec.ConfirmSelect())
    setup.publish("", q, "a")
    setup.publish("", q, "b")
    await setup.settle()
    tx = await conn.channel()
    await tx.call(spec.TxSelect())
    await tx.get(q)
    await tx.get(q)
    tx.send(spec.BasicAck(delivery_tag=1))
    tx.send(spec.BasicReject(delivery_tag=2, requeue=False))
    await tx.close()
    # never committed: both deliveries are back in the queue, redelivered
    await setup.get(q)
    await setup.get(q)


@scenario(E("channel.close", reply_code=406, class_id=90, method_id=10))
async def tx_on_confirm_channel(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.call(spec.ConfirmSelect())
    await ch.call(spec.TxSelect())
    ch = await conn.channel()
    await ch.call(spec.TxCommit())
    ch = await conn.channel()
    await ch.call(spec.TxRollback())


@scenario(E("channel.close", reply_code=406, class_id=85, method_id=10))
async def confirm_on_tx_channel(ctx: Context) -> None:
    ch = await ctx.channel()
    await ch.call(spec.TxSelect())
    await ch.call(spec.TxSelect())
    await ch.call(spec.ConfirmSelect())


@scenario(
    E("basic.get-ok", body="m0", redelivered=True, message_count=1),
    E("basic.get-ok", body="m2", redelivered=False, message_count=0),
)
async def requeue_on_channel_close(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    setup = await conn.channel()
    await setup.call(QueueDeclare(queue=q, exclusive=True))
    await setup.call(spec.ConfirmSelect())
    for i in range(3):
        setup.publish("", q, f"m{i}")
    await setup.settle()
    ch = await conn.channel()
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c"))
    await ch.receive_n(3)
    ch.send(spec.BasicAck(delivery_tag=2))
    await ch.close()
    # m0 and m2 come back in their original order, marked redelivered (m1 was acked).
    await setup.get(q)
    await setup.get(q)
    setup.publish("", q, "m2")
    await setup.settle()
    await setup.get(q)


@scenario(E("queue.declare-ok", queue="q", message_count=1))
async def ack_after_cancel(ctx: Context) -> None:
    conn = await ctx.connect()
    q = ctx.q("q")
    ch = await conn.channel()
    await ch.call(QueueDeclare(queue=q, exclusive=True))
    await ch.call(spec.ConfirmSelect())
    ch.publish("", q, "a")
    ch.publish("", q, "b")
    await ch.settle()
    await ch.call(spec.BasicConsume(queue=q, consumer_tag="c"))
    await ch.receive_n(2)
    await ch.call(spec.BasicCancel(consumer_tag="c"))
    # Deliveries of a cancelled consumer can still be acknowledged.
    ch.send(spec.BasicAck(delivery_tag=1))
    await ch.call(QueueDeclare(queue=q, passive=True))
    await ch.close()
    other = await conn.channel()
    await other.call(QueueDeclare(queue=q, passive=True))


@scenario(E("basic.deliver", consumer_tag="second", delivery_tag=2))
async def delivery_tags_per_channel(ctx: Context) -> None:
    ch = await ctx.channel()
    qa, qb = ctx.q("a"), ctx.q("b")
    await ch.call(QueueDeclare(queue=qa, exclusive=True))
    await ch.call(QueueDeclare(queue=qb, exclusive=True))
    await ch.call(spec.BasicConsume(queue=qa, consumer_tag="first"))
    await ch.call(spec.BasicConsume(queue=qb, consumer_tag="second"))
    ch.publish("", qa, "to a")
    await ch.receive()
    ch.publish("", qb, "to b")
    await ch.receive()
    ch.publish("", qa, "to a again")
    await ch.receive()
    # One tag sequence per channel: acknowledging 2 (multiple) covers both consumers.
    ch.send(spec.BasicAck(delivery_tag=2, multiple=True))
    ch.send(spec.BasicAck(delivery_tag=3))
    await ch.get(qa)
    ch.send(spec.BasicAck(delivery_tag=1))
    await ch.receive()


@scenario(E("basic.get-ok", body="m0", redelivered=True, message_count=1))
async def requeue_on_connection_close(ctx: Context) -> None:
    q = ctx.q("q")
    owner = await ctx.channel("owner")
    await owner.call(QueueDeclare(queue=q, auto_delete=False))
    await owner.call(spec.ConfirmSelect())
    owner.publish("", q, "m0")
    owner.publish("", q, "m1")
    await owner.settle()
    worker = await ctx.connect("worker")
    wch = await worker.channel()
    await wch.get(q)
    await wch.get(q)
    await worker.close()
    await owner.get(q)
    await owner.get(q)
    await owner.call(spec.QueueDelete(queue=q))
