"""Scenarios: AMQP 0-8 clients (the 1-1-8-0 and 1-1-9-1 headers) and the 0-9 header.

The connections here speak 0-8 through the protocol core's 0-8 dialect, so what the
broker answers is decoded with the 0-8 tables; where 0-8 numbers a method differently
from 0-9-1 (connection.close is (10, 60)), the scenario records the ids it came with.
"""

from __future__ import annotations

import asyncio
import struct

from kiltmq.protocol import BasicProperties, ContentReceived, MethodReceived, spec, spec08
from kiltmq.protocol.dialect import AMQP_0_8
from kiltmq.protocol.frames import FRAME_BODY, FRAME_HEADER, encode_frame, method_frame

from .context import Context
from .recording import RecordingChannel, RecordingConnection
from .registry import E, scenario
from .sc_protocol import raw_reply
from .transcript import Item

HEADER_0_8 = b"AMQP\x01\x01\x08\x00"
HEADER_0_9_1_AS_0_8 = b"AMQP\x01\x01\x09\x01"  # what py-amqplib sends for 0-8
HEADER_0_9 = b"AMQP\x01\x01\x00\x09"
# channel.open-ok of 0-8: a method frame on channel 1 with no arguments.
OPEN_OK_0_8 = b"\x01\x00\x01\x00\x00\x00\x04\x00\x14\x00\x0b\xce"
# Long enough for the broker to have answered a method at once, had it done so.
QUIET = 0.5


def record_ids(ctx: Context, who: str, item: Item) -> None:
    """Record the class and method ids a method came with (0-8 numbers some apart)."""
    if isinstance(item, MethodReceived | ContentReceived):
        method = item.method
        ctx.t.add(who, "ids", {"method": method.NAME, "ids": (method.CLASS_ID, method.METHOD_ID)})


async def connect_0_8(
    ctx: Context, header: bytes = HEADER_0_8, mechanism: str = "AMQPLAIN"
) -> RecordingConnection:
    return await ctx.connect(dialect=AMQP_0_8, header=header, mechanism=mechanism)


async def channel_0_8(ctx: Context) -> RecordingChannel:
    """A 0-8 connection with channel 1 open and an access ticket requested."""
    conn = await connect_0_8(ctx)
    ch = await conn.channel()
    await ch.call(spec08.AccessRequest(realm="/data", active=True, read=True, write=True))
    return ch


async def close_0_8(ctx: Context, conn: RecordingConnection) -> None:
    """connection.close in 0-8's numbering; record the ids of the close-ok."""
    conn.send(0, spec08.ConnectionClose(reply_code=200, reply_text="bye"))
    item = await conn.expect()
    record_ids(ctx, conn.label, item)


@scenario(
    E("connection.start", version=(8, 0), has_plain=True),
    E("connection.start", version=(8, 0), capabilities=[]),
    E("ids", method="connection.close-ok", ids=(10, 61)),
)
async def amqp08_handshake(ctx: Context) -> None:
    for header in (HEADER_0_8, HEADER_0_9_1_AS_0_8):
        for mechanism in ("AMQPLAIN", "PLAIN"):
            conn = await ctx.socket(dialect=AMQP_0_8)
            ok = await conn.try_handshake(
                username=ctx.username,
                password=ctx.password,
                vhost=ctx.vhost,
                record=True,
                header=header,
                mechanism=mechanism,
            )
            ctx.check(ok, f"{header!r} {mechanism} login")
            await close_0_8(ctx, conn)


@scenario(E("connection.start", version=(0, 9), has_plain=True), E("queue.declare-ok"))
async def amqp09_header_gets_0_9_1(ctx: Context) -> None:
    conn = await ctx.socket()
    ok = await conn.try_handshake(
        username=ctx.username,
        password=ctx.password,
        vhost=ctx.vhost,
        record=True,
        header=HEADER_0_9,
    )
    ctx.check(ok, "0-9 login")
    ch = await conn.channel(record=True)
    await ch.call(spec.QueueDeclare(queue="", exclusive=True))
    await ch.call(spec.ConfirmSelect())  # 0-9-1's own
    await conn.close()


@scenario(
    E("access.request-ok", ticket=1),
    E("channel.open-ok without payload", ok=True),
)
async def amqp08_channel_and_access(ctx: Context) -> None:
    conn = await connect_0_8(ctx)
    ch = await conn.channel(record=True)
    ctx.check(bytes(conn.received).count(OPEN_OK_0_8) == 1, "channel.open-ok without payload")
    for realm in ("/data", "/admin", "/nothing-such"):
        await ch.call(spec08.AccessRequest(realm=realm, active=True, read=True))
    await ch.call(spec08.AccessRequest(realm="/data", exclusive=True, passive=True))
    await ch.close()
    await conn.channel(2, record=True)
    await close_0_8(ctx, conn)


@scenario(
    E("exchange.declare-ok"),
    E("queue.bind-ok"),
    E("queue.unbind-ok"),
    E("drained", queue="q", bodies=["bound"]),
    E("drained", queue="q", bodies=[]),
)
async def amqp08_declare_bind_unbind(ctx: Context) -> None:
    ch = await channel_0_8(ctx)
    x, q = ctx.x("direct"), ctx.q("q")
    await ch.call(spec.ExchangeDeclare(exchange=x, type="direct", reserved_1=1))
    await ch.call(spec.ExchangeDeclare(exchange=x, type="direct", passive=True))
    await ch.call(spec.QueueDeclare(queue=q, reserved_1=1))
    await ch.call(spec.QueueDeclare(queue=q, passive=True))
    await ch.call(spec.QueueBind(queue=q, exchange=x, routing_key="k", reserved_1=1))
    ch.publish(x, "k", "bound")
    ch.publish(x, "other", "unrouted")
    await ch.drain(q)
    await ch.call(spec.QueueUnbind(queue=q, exchange=x, routing_key="k"))  # RabbitMQ's
    ch.publish(x, "k", "unbound")
    await ch.drain(q)
    await ch.call(spec.QueuePurge(queue=q))
    await ch.call(spec.QueueDelete(queue=q))
    await ch.call(spec.ExchangeDelete(exchange=x))


PROPERTIES = BasicProperties(
    content_type="text/plain",
    content_encoding="utf-8",
    headers={"k": "v", "n": 7, "nested": {"a": [1, "b"]}},
    delivery_mode=2,
    priority=5,
    correlation_id="corr",
    reply_to="replies",
    message_id="m-1",
    timestamp=1700000000,
    type="greeting",
    user_id="guest",
    app_id="compat",
)


def record_properties(ctx: Context, who: str, item: Item) -> None:
    if isinstance(item, ContentReceived):
        props = item.properties()
        fields = {name: getattr(props, name) for name in props.FIELDS}
        ctx.t.add(who, "properties", {k: v for k, v in fields.items() if v is not None})


@scenario(
    E("basic.get-ok", body="hello", message_count=1),
    E("properties", delivery_mode=2, priority=5, correlation_id="corr"),
    E("basic.get-empty"),
)
async def amqp08_publish_and_get(ctx: Context) -> None:
    ch = await channel_0_8(ctx)
    q = ctx.q("q")
    await ch.call(spec.QueueDeclare(queue=q))
    ch.publish("", q, "hello", properties=PROPERTIES)
    ch.publish("", q, "")
    record_properties(ctx, ch.who, await ch.get(q))
    record_properties(ctx, ch.who, await ch.get(q, no_ack=True))
    await ch.get(q)
    ch.send(spec.BasicAck(delivery_tag=1))
    await ch.call(spec.QueueDeclare(queue=q, passive=True))


@scenario(
    E("basic.consume-ok", consumer_tag="c08"),
    E("basic.deliver", consumer_tag="c08", body="one", redelivered=False),
    E("basic.cancel-ok", consumer_tag="c08"),
)
async def amqp08_consume(ctx: Context) -> None:
    ch = await channel_0_8(ctx)
    q = ctx.q("q")
    await ch.call(spec.QueueDeclare(queue=q))
    ch.publish("", q, "one")
    await ch.call(spec08.BasicConsume(queue=q, consumer_tag="c08", ticket=1))
    await ch.receive()
    ch.publish("", q, "two", properties=BasicProperties(headers={"h": 1}))
    await ch.receive()
    await ch.call(spec.BasicQos(prefetch_count=1))
    ch.send(spec.BasicAck(delivery_tag=2, multiple=True))
    await ch.call(spec.BasicCancel(consumer_tag="c08"))
    # A generated tag, and exclusive consumers.
    await ch.call(spec08.BasicConsume(queue=q, no_ack=True))
    await ch.call(spec08.BasicConsume(queue=q, consumer_tag="x", exclusive=True))


@scenario(
    E("basic.get-ok", body="m", redelivered=True),
    E("basic.recover-ok"),
    E("basic.deliver", body="m", redelivered=True),
)
async def amqp08_recover(ctx: Context) -> None:
    ch = await channel_0_8(ctx)
    q = ctx.q("q")
    await ch.call(spec.QueueDeclare(queue=q))
    ch.publish("", q, "m")
    await ch.get(q)
    # 0-8's basic.recover (60, 100): no reply, the message is requeued and redelivered.
    ch.send(spec.BasicRecoverAsync(requeue=True))
    await ch.get(q)
    # RabbitMQ's basic.recover (60, 110) of its 0-8: answered with recover-ok.
    await ch.call(spec.BasicRecover(requeue=True))
    await ch.call(spec08.BasicConsume(queue=q, consumer_tag="c"))
    await ch.receive()
    ch.send(spec.BasicRecoverAsync(requeue=True))
    await ch.receive()


@scenario(
    E("channel.close", reply_code=404, class_id=50, method_id=10),
    E("channel.close-ok"),
    E("ids", method="connection.close-ok", ids=(10, 61)),
)
async def amqp08_errors_and_close(ctx: Context) -> None:
    ch = await channel_0_8(ctx)
    conn = ch.conn
    await ch.call(spec.QueueDeclare(queue=ctx.q("missing"), passive=True))
    ch = await conn.channel(2, record=True)
    await ch.call(spec.ExchangeDeclare(exchange=ctx.x("missing"), passive=True))
    ch = await conn.channel(3)
    await ch.call(spec.ChannelClose(reply_code=200, reply_text="done"))
    await close_0_8(ctx, conn)


@scenario(E("ids", method="connection.close", ids=(10, 60)), E("connection.close", reply_code=503))
async def amqp08_unimplemented_classes(ctx: Context) -> None:
    methods: list[spec.Method] = [
        spec08.FileQos(prefetch_count=10),
        spec08.StreamQos(prefetch_count=1),
        spec08.DtxSelect(),
        spec08.TestInteger(integer_1=1, integer_2=2, integer_3=3, integer_4=4, operation=0),
        spec08.FilePublish(),  # file.publish carries no content (file.stage does)
    ]
    for method in methods:
        conn = await connect_0_8(ctx)
        ch = await conn.channel()
        conn.send_raw(method_frame(ch.number, method))
        item = await conn.expect()
        record_ids(ctx, conn.label, item)
        await conn.wait_eof()


@scenario(E("EOF"))
async def amqp08_lacks_the_method(ctx: Context) -> None:
    # confirm.select, basic.nack and exchange.bind are 0-9-1's: RabbitMQ drops the socket.
    methods: list[spec.Method] = [
        spec.ConfirmSelect(),
        spec.BasicNack(delivery_tag=1),
        spec.ExchangeBind(destination="a", source="b"),
    ]
    for method in methods:
        conn = await connect_0_8(ctx)
        ch = await conn.channel()
        conn.send_raw(method_frame(ch.number, method))
        await conn.wait_eof()


@scenario(E("protocol-header", bytes=list(b"AMQP\x00\x00\x09\x01"), rest=0))
async def amqp08_bad_protocol_header(ctx: Context) -> None:
    for header in (
        b"AMQP\x01\x01\x08\x01",
        b"AMQP\x01\x01\x07\x00",
        b"AMQP\x01\x01\x09\x00",
        b"AMQP\x01\x02\x08\x00",
        b"AMQP\x01\x01\x00\x08",
    ):
        await raw_reply(await ctx.socket(), header)


async def quiet(conn: RecordingConnection) -> bool:
    """True when nothing came on channel 0 for a while and the socket is open."""
    await asyncio.sleep(QUIET)
    return conn.inbox(0).empty() and not conn.closed


def content_header(class_id: int, body_size: int) -> bytes:
    return encode_frame(FRAME_HEADER, 1, struct.pack(">HHQH", class_id, 0, body_size, 0))


@scenario(
    E("connection.close", reply_code=503, class_id=110, method_id=10),
    E("connection.close", reply_code=505, class_id=110, method_id=10),
    E("waits for the content", ok=True),
)
async def amqp08_tunnel_request_content(ctx: Context) -> None:
    # tunnel.request carries content: the broker reads its header and body before it
    # answers that the method is not implemented.
    request = method_frame(1, spec08.TunnelRequest(meta_data={"k": "v"}))
    conn = await connect_0_8(ctx)
    await conn.channel()
    conn.send_raw(request)
    ctx.check(await quiet(conn), "waits for the content")
    conn.send_raw(content_header(110, 4))
    ctx.check(await quiet(conn), "waits for the body")
    conn.send_raw(encode_frame(FRAME_BODY, 1, b"data"))
    await conn.wait_eof()
    # With an empty body the header completes it.
    conn = await connect_0_8(ctx)
    await conn.channel()
    conn.send_raw(request + content_header(110, 0))
    await conn.wait_eof()
    # A method where the content header should be.
    conn = await connect_0_8(ctx)
    await conn.channel()
    conn.send_raw(request + method_frame(1, spec.BasicQos(prefetch_count=1)))
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=503, class_id=80, method_id=40))
async def amqp08_other_content_methods(ctx: Context) -> None:
    # Content-bearing methods of the classes RabbitMQ does not implement, and ones only
    # a server sends: each is answered once its content is complete.
    methods: list[tuple[spec.Method, int]] = [
        (spec08.StreamPublish(exchange="amq.direct", routing_key="k"), 80),
        (spec08.FileStage(), 70),
        (spec08.TestContent(), 120),
        (spec.BasicDeliver("t", 1, False, "", "q"), 60),
    ]
    for method, class_id in methods:
        conn = await connect_0_8(ctx)
        await conn.channel()
        conn.send_raw(method_frame(1, method))
        ctx.check(await quiet(conn), f"{method.NAME} waits for its content")
        conn.send_raw(content_header(class_id, 0))
        await conn.wait_eof()
