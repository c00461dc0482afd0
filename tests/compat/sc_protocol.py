"""Scenarios: the connection handshake, channels, and frames that break the protocol."""

from __future__ import annotations

import asyncio
import struct

from kiltmq.protocol import ProtocolError, spec
from kiltmq.protocol.frames import (
    FRAME_BODY,
    FRAME_END_OCTET,
    FRAME_HEAD,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    encode_frame,
)

from .context import Context
from .recording import RecordingConnection
from .registry import E, scenario
from .transcript import Closed


def record_first_bytes(conn: RecordingConnection) -> None:
    """Record the beginning of what the server sent before any frame could be parsed by
    a 0-9-1 client: a protocol header, or a method frame with its class, method and (for
    connection.start) version octets."""
    raw = bytes(conn.received)
    if raw.startswith(b"AMQP"):
        conn.t.add(conn.label, "protocol-header", {"bytes": list(raw[:8]), "rest": len(raw) - 8})
    elif len(raw) >= 11:
        frame_type, channel, _size = FRAME_HEAD.unpack_from(raw)
        class_id, method_id, major, minor = struct.unpack_from(">HHBB", raw, 7)
        conn.t.add(
            conn.label,
            "frame",
            {
                "type": frame_type,
                "channel": channel,
                "method": (class_id, method_id),
                "version": (major, minor),
            },
        )
    else:
        conn.t.add(conn.label, "raw", {"bytes": list(raw)})


async def raw_reply(conn: RecordingConnection, data: bytes) -> None:
    """Write ``data`` on a connection whose core has not started, wait for the server to
    close, and record the beginning of what it sent."""
    conn.send_raw(data)
    while True:
        item = await conn.read_item(0)
        if isinstance(item, Closed):
            break
        if not isinstance(item, ProtocolError):
            conn.record(conn.label, item)
    record_first_bytes(conn)
    conn.t.add(conn.label, "EOF")


@scenario(E("protocol-header", bytes=list(b"AMQP\x00\x00\x09\x01"), rest=0))
async def bad_protocol_header(ctx: Context) -> None:
    for header in (b"AMQP\x00\x00\x09\x02", b"HTTP/1.1", b"AMQP\x00\x00\x08\x00"):
        await raw_reply(await ctx.socket(), header)


@scenario(E("frame", type=1, channel=0, method=(10, 10), version=(0, 9)))
async def protocol_header_0_9(ctx: Context) -> None:
    # The header of AMQP 0-9 (before 0-9-1): answered with a 0-9-1 connection.start. The
    # client's core, which sent no header itself, reports that start as a protocol error:
    # only the raw bytes count here.
    conn = await ctx.socket()
    conn.send_raw(b"AMQP\x01\x01\x00\x09")
    item = await conn.read_item(0)
    ctx.check(isinstance(item, ProtocolError), "a frame came back")
    conn.abort()
    record_first_bytes(conn)


@scenario(
    E("connection.start", version=(0, 9), has_plain=True),
    E("connection.tune", channel_max=2047, frame_max=131072, heartbeat=60),
    E("heartbeat", received=True),
)
async def handshake_and_heartbeat(ctx: Context) -> None:
    conn = await ctx.socket()
    await conn.try_handshake(
        username=ctx.username, password=ctx.password, vhost=ctx.vhost, heartbeat=1, record=True
    )
    # With a 1 s heartbeat the server sends heartbeat frames while we are silent.
    for _ in range(int(4 / 0.05)):
        if conn.heartbeats:
            break
        await asyncio.sleep(0.05)
    ctx.t.add(conn.label, "heartbeat", {"received": conn.heartbeats > 0})
    conn.send_raw(encode_frame(FRAME_HEARTBEAT, 0, b""))  # ours are accepted silently
    ch = await conn.channel()
    await ch.call(spec.QueueDeclare(queue="", exclusive=True))
    await conn.close()


@scenario(E("connection.close", reply_code=403, class_id=0, method_id=0))
async def auth_failure(ctx: Context) -> None:
    conn = await ctx.socket()
    ok = await conn.try_handshake(username=ctx.username, password="wrong-password", vhost=ctx.vhost)
    ctx.check(not ok, "refused")
    await conn.wait_eof()
    conn = await ctx.socket()
    ok = await conn.try_handshake(username="nobody-such", password="x", vhost=ctx.vhost)
    await conn.wait_eof()


@scenario(E("AMQPLAIN login", ok=True), E("connection.close", reply_code=403))
async def auth_amqplain(ctx: Context) -> None:
    conn = await ctx.socket()
    ok = await conn.try_handshake(
        username=ctx.username, password=ctx.password, vhost=ctx.vhost, mechanism="AMQPLAIN"
    )
    ctx.check(ok, "AMQPLAIN login")
    ch = await conn.channel(record=True)
    await ch.call(spec.QueueDeclare(queue="", exclusive=True))
    await conn.close()
    conn = await ctx.socket()
    await conn.try_handshake(
        username=ctx.username, password="wrong", vhost=ctx.vhost, mechanism="AMQPLAIN"
    )
    await conn.wait_eof()


@scenario(E("EOF"))
async def auth_unknown_mechanism(ctx: Context) -> None:
    conn = await ctx.socket()
    ok = await conn.try_handshake(
        username=ctx.username, password=ctx.password, vhost=ctx.vhost, mechanism="KILT"
    )
    ctx.check(not ok, "refused")
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=530, class_id=10, method_id=40))
async def unknown_vhost(ctx: Context) -> None:
    conn = await ctx.socket()
    ok = await conn.try_handshake(
        username=ctx.username, password=ctx.password, vhost="no-such-vhost-here"
    )
    ctx.check(not ok, "refused")
    await conn.wait_eof()


async def open_connection_then(
    ctx: Context, frames: bytes, channel: int = 0
) -> RecordingConnection:
    """Open a connection, write ``frames`` as they are and read until the server closes."""
    conn = await ctx.connect()
    conn.send_raw(frames)
    await conn.wait_eof()
    return conn


@scenario(E("connection.close", reply_code=504, class_id=20, method_id=10))
async def channel_open_twice(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw_method(1, spec.ChannelOpen())
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=504, class_id=50, method_id=10))
async def method_on_unopened_channel(ctx: Context) -> None:
    await open_connection_then(
        ctx, encode_frame(FRAME_METHOD, 5, spec.QueueDeclare(queue="", exclusive=True).encode())
    )


@scenario(E("connection.close", reply_code=504))
async def method_on_closed_channel(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.close()
    conn.send_raw_method(ch.number, spec.BasicQos(prefetch_count=1))
    await conn.wait_eof()


@scenario(E("channel.open-ok"))
async def channel_reopen_after_close(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel(7, record=True)
    await ch.close()
    ch = await conn.channel(7, record=True)
    await ch.call(spec.ChannelFlow(active=True))
    # A channel number above RabbitMQ's default channel_max (2047).
    await conn.channel(2047, record=True)
    await conn.close()


async def handshake_until_tune(ctx: Context) -> RecordingConnection:
    """Header and start-ok sent, connection.tune read: the caller continues."""
    conn = await ctx.socket()
    conn.core.send_protocol_header()
    conn.flush()
    await conn.read_item(0)  # connection.start
    conn.send(
        0,
        spec.ConnectionStartOk(
            client_properties={"capabilities": {"authentication_failure_close": True}},
            mechanism="PLAIN",
            response=b"\x00" + ctx.username.encode() + b"\x00" + ctx.password.encode(),
            locale="en_US",
        ),
    )
    await conn.read_item(0)  # connection.tune
    return conn


@scenario(E("connection.close", reply_code=530, class_id=0, method_id=0))
async def channel_max_exceeded(ctx: Context) -> None:
    conn = await handshake_until_tune(ctx)
    conn.send(0, spec.ConnectionTuneOk(channel_max=2, frame_max=131072, heartbeat=0))
    conn.send(0, spec.ConnectionOpen(virtual_host=ctx.vhost))
    await conn.expect()
    await conn.channel(1, record=True)
    await conn.channel(2, record=True)
    await conn.channel(3, record=True)
    await conn.wait_eof()


@scenario(E("channel.open-ok"))
async def channel_number_above_channel_max(ctx: Context) -> None:
    # RabbitMQ limits how many channels are open, not their numbers.
    conn = await handshake_until_tune(ctx)
    conn.send(0, spec.ConnectionTuneOk(channel_max=2, frame_max=131072, heartbeat=0))
    conn.send(0, spec.ConnectionOpen(virtual_host=ctx.vhost))
    await conn.expect()
    await conn.channel(5, record=True)
    await conn.close()


async def tune_ok_then_open(ctx: Context, channel_max: int, frame_max: int) -> None:
    conn = await handshake_until_tune(ctx)
    conn.send(0, spec.ConnectionTuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=0))
    conn.send(0, spec.ConnectionOpen(virtual_host=ctx.vhost))
    await conn.wait_eof()


@scenario(E("EOF"))
async def tune_ok_frame_max_below_minimum(ctx: Context) -> None:
    await tune_ok_then_open(ctx, 0, 1024)


@scenario(E("EOF"))
async def tune_ok_frame_max_above_server(ctx: Context) -> None:
    await tune_ok_then_open(ctx, 0, 10_000_000)


@scenario(E("EOF"))
async def tune_ok_channel_max_above_server(ctx: Context) -> None:
    await tune_ok_then_open(ctx, 5000, 131072)


@scenario(E("EOF"))
async def channel_method_before_connection_open(ctx: Context) -> None:
    conn = await handshake_until_tune(ctx)
    conn.send(0, spec.ConnectionTuneOk(channel_max=0, frame_max=131072, heartbeat=0))
    conn.send_raw_method(1, spec.ChannelOpen())
    await conn.wait_eof()


@scenario(E("EOF"))
async def open_before_tune_ok(ctx: Context) -> None:
    conn = await handshake_until_tune(ctx)
    conn.send_raw_method(0, spec.ConnectionOpen(virtual_host=ctx.vhost))
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=501))
async def frame_too_big(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.channel(1)
    body = b"x" * 200_000
    frames = encode_frame(FRAME_METHOD, 1, spec.BasicPublish(routing_key="x").encode())
    frames += encode_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, len(body), 0))
    frames += encode_frame(FRAME_BODY, 1, body)
    conn.send_raw(frames)
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=501))
async def frame_bad_end_octet(ctx: Context) -> None:
    frame = encode_frame(FRAME_METHOD, 0, spec.ConnectionCloseOk().encode())
    await open_connection_then(ctx, frame[:-1] + b"\x00")


@scenario(E("connection.close", reply_code=501))
async def frame_unknown_type(ctx: Context) -> None:
    await open_connection_then(ctx, FRAME_HEAD.pack(9, 0, 4) + b"abcd" + FRAME_END_OCTET)


@scenario(E("connection.close", reply_code=505))
async def heartbeat_on_channel(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw(encode_frame(FRAME_HEARTBEAT, 1, b""))
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=501))
async def garbage_after_handshake(ctx: Context) -> None:
    await open_connection_then(ctx, b"this is not AMQP at all, just some text\r\n" * 4)


@scenario(E("EOF"))
async def unknown_class_and_method(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw(encode_frame(FRAME_METHOD, 1, struct.pack(">HH", 99, 1)))
    await conn.wait_eof()
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw(encode_frame(FRAME_METHOD, 1, struct.pack(">HH", 60, 99)))
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=503))
async def method_from_wrong_side(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw_method(1, spec.BasicGetEmpty())
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=503))
async def connection_method_on_channel(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw_method(1, spec.ConnectionOpen(virtual_host="/"))
    await conn.wait_eof()
    conn = await ctx.connect()
    conn.send_raw_method(0, spec.QueueDeclare(queue="", exclusive=True))
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=505))
async def content_frames_out_of_order(ctx: Context) -> None:
    # A content header with no publish before it.
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw(encode_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 1, 0)))
    await conn.wait_eof()
    # A method where the content header should be.
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw(
        encode_frame(FRAME_METHOD, 1, spec.BasicPublish(routing_key="x").encode())
        + encode_frame(FRAME_METHOD, 1, spec.BasicQos(prefetch_count=1).encode())
    )
    await conn.wait_eof()
    # A body frame with no header.
    conn = await ctx.connect()
    await conn.channel(1)
    conn.send_raw(encode_frame(FRAME_BODY, 1, b"body"))
    await conn.wait_eof()


@scenario(E("connection.close", reply_code=540))
async def unsupported_options(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.call(spec.BasicQos(prefetch_size=1000, prefetch_count=1))
    await conn.wait_eof()
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.call(spec.BasicQos(prefetch_count=10, global_=True))
    await ch.call(spec.ChannelFlow(active=False))
    await conn.wait_eof()


@scenario(E("connection.close-ok"))
async def close_handshake(ctx: Context) -> None:
    conn = await ctx.connect()
    ch = await conn.channel()
    await ch.call(spec.ChannelClose(reply_code=200, reply_text="done", class_id=0, method_id=0))
    await conn.close()


@scenario(E("connection.close", reply_code=503, class_id=60, method_id=60))
async def content_method_from_wrong_side(ctx: Context) -> None:
    # basic.deliver and basic.return carry content: the server reads it before the 503.
    for method in (
        spec.BasicDeliver("t", 1, False, "", "q"),
        spec.BasicReturn(312, "NO_ROUTE", "", "q"),
    ):
        conn = await ctx.connect()
        await conn.channel(1)
        conn.send_raw_method(1, method)
        await asyncio.sleep(0.5)
        ctx.check(conn.inbox(0).empty() and not conn.closed, f"{method.NAME} waits")
        conn.send_raw(encode_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 2, 0)))
        conn.send_raw(encode_frame(FRAME_BODY, 1, b"ab"))
        await conn.wait_eof()


@scenario(
    E(
        "channel.close",
        reply_code=406,
        reply_text="PRECONDITION_FAILED - message size 134217729 is larger than configured "
        "max size 134217728",
        class_id=60,
        method_id=40,
    ),
    E("queue.declare-ok"),
)
async def message_larger_than_max_size(ctx: Context) -> None:
    # One byte over the default 128 MiB. RabbitMQ refuses it once the body is in, kiltmq
    # when the content header arrives (its body is then discarded): the same reply.
    conn = await ctx.connect()
    ch = await conn.channel()
    ch.publish("", ctx.q("nowhere"), bytes(128 * 1024 * 1024 + 1))
    await ch.receive(timeout=60)
    ch = await conn.channel()
    await ch.call(spec.QueueDeclare(queue="", exclusive=True))
