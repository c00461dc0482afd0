"""Scenarios: field values Python's types do not hold as they are, malformed strings, and
methods pipelined where the server's state is about to change."""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime
from typing import Any

from kiltmq.protocol import BasicProperties, ContentReceived, MethodReceived, spec
from kiltmq.protocol.codec import Timestamp, decode_table
from kiltmq.protocol.frames import (
    FrameReader,
    content_frames,
    content_header_payload,
    encode_frame,
    method_frame,
)

from .context import Context
from .recording import RecordingConnection
from .registry import E, scenario


def _nested(depth: int) -> dict[str, Any]:
    inner = b"\x00\x00\x00\x00"
    for _ in range(depth):
        entry = b"\x01kF" + inner
        inner = struct.pack(">I", len(entry)) + entry
    return decode_table(inner, 0)[0]


# a timestamp of 2**64-1, a table 580 deep, a field name that is not UTF-8 (b"\xff\xfe")
ODD: dict[str, Any] = {"ts": Timestamp(2**64 - 1), "deep": _nested(580), "\udcff\udcfe": 1}
# as client properties: start-ok must fit the 4096 bytes of a frame before tune-ok
ODD_CLIENT: dict[str, Any] = {**ODD, "deep": _nested(500)}


@scenario(
    E("connection.open-ok"),
    E("queue.declare-ok", message_count=0),
    E("delivered byte for byte", ok=True),
)
async def odd_field_values(ctx: Context) -> None:
    conn = await ctx.socket()
    conn.core.send_protocol_header()
    conn.flush()
    start = await conn.read_item(0)
    ctx.check(isinstance(start, MethodReceived), "connection.start")
    conn.send(
        0,
        spec.ConnectionStartOk(
            client_properties={"product": "kiltmq compat test client", **ODD_CLIENT},
            mechanism="PLAIN",
            response=f"\0{ctx.username}\0{ctx.password}".encode(),
            locale="en_US",
        ),
    )
    tune = await conn.expect()
    if not (isinstance(tune, MethodReceived) and isinstance(tune.method, spec.ConnectionTune)):
        return
    conn.send_tune_ok(tune.method, heartbeat=0)
    conn.send(0, spec.ConnectionOpen(virtual_host=ctx.vhost))
    await conn.expect()
    ch = await conn.channel()
    q, x = ctx.q("odd"), ctx.x("odd-headers")
    await ch.call(spec.QueueDeclare(queue=q, arguments=ODD))
    await ch.call(spec.QueueDeclare(queue=q, arguments=ODD))  # equivalent
    await ch.call(spec.ExchangeDeclare(exchange=x, type="headers", arguments=ODD))
    await ch.call(spec.QueueBind(queue=q, exchange=x, arguments={"x-match": "any", "n": 1}))
    props = BasicProperties(headers={**ODD, "n": 1}, timestamp=2**64 - 1)
    same = True
    for exchange, key in (("", q), (x, "")):  # the headers exchange reads the headers
        ch.publish(exchange, key, "odd", properties=props)
        got = await ch.get(q, no_ack=True)
        same = same and isinstance(got, ContentReceived) and got.raw_properties == props.encode()
    ctx.check(same, "delivered byte for byte")


@scenario(E("connection.close", reply_code=501, class_id=0, method_id=0))
async def short_string_not_utf8(ctx: Context) -> None:
    for name in (b"q-\xff", b"\xc3"):
        conn = await ctx.connect()
        await conn.channel()
        payload = struct.pack(">HHH", 50, 10, 0) + bytes([len(name)]) + name + b"\x00"
        conn.send_raw(encode_frame(1, 1, payload + b"\x00\x00\x00\x00"))
        await conn.expect()
        await conn.wait_eof()


@scenario(E("connection.tune"), E("EOF"))
async def start_ok_frame_size(ctx: Context) -> None:
    # before tune-ok a frame holds at most 4096 bytes of payload; a larger start-ok (large
    # client properties) makes the server drop the socket
    for size in (4096, 4097):
        conn = await ctx.socket()
        conn.core.send_protocol_header()
        conn.flush()
        await conn.read_item(0)
        response = f"\0{ctx.username}\0{ctx.password}".encode()
        fixed = spec.ConnectionStartOk({"p": ""}, "PLAIN", response, "en_US").encode()
        pad = size - len(fixed)
        start_ok = spec.ConnectionStartOk({"p": "a" * pad}, "PLAIN", response, "en_US")
        ctx.check(len(start_ok.encode()) == size, f"start-ok of {size} bytes")
        conn.send(0, start_ok)
        item = await conn.expect()
        if isinstance(item, MethodReceived):
            conn.abort()


async def raw_replies(conn: RecordingConnection, data: bytes, count: int) -> None:
    """Write ``data`` around the client's core and record the first ``count`` frames the
    server sends back as method names and channels (or EOF)."""
    skip = len(conn.received)
    conn.send_raw(data)
    reader = FrameReader(0)
    frames: list[tuple[int, bytes]] = []
    with contextlib.suppress(TimeoutError):
        while len(frames) < count and not conn.closed:
            await conn.wait_for_data(None, "")
            frames = [(ch, p) for _, ch, p in reader.feed(bytes(conn.received[skip:]))]
            reader = FrameReader(0)
    for channel, payload in frames[:count]:
        method = spec.METHODS[struct.unpack_from(">I", payload)[0]].decode(payload)
        conn.t.add(conn.label, method.NAME, {"channel": channel})
    conn.abort()


@scenario(E("channel.close-ok", channel=1))
async def methods_behind_channel_close(ctx: Context) -> None:
    # Pipelined behind channel.close, before its close-ok: another close is answered
    # again, anything else on the channel is discarded (content included)
    close = method_frame(1, spec.ChannelClose(200, "bye", 0, 0))
    publish = content_frames(
        1, spec.BasicPublish("", "x").encode(), content_header_payload(60, 3, None), b"abc", 0
    )
    declare = method_frame(1, spec.QueueDeclare("", exclusive=True))
    for frames in ((close, close), (close, publish, declare, close)):
        conn = await ctx.connect()
        await conn.channel()
        await raw_replies(conn, b"".join(frames), 2)


@scenario(E("queue.declare-ok", channel=1))
async def methods_behind_connection_open(ctx: Context) -> None:
    # tune-ok, connection.open, channel.open and queue.declare in one write
    conn = await ctx.socket()
    conn.core.send_protocol_header()
    conn.flush()
    await conn.read_item(0)
    conn.send_start_ok(ctx.username, ctx.password)
    item = await conn.read_item(0)
    if not (isinstance(item, MethodReceived) and isinstance(item.method, spec.ConnectionTune)):
        conn.record(conn.label, item)
        return
    tune = item.method
    frames = (
        method_frame(0, spec.ConnectionTuneOk(tune.channel_max, tune.frame_max, 0)),
        method_frame(0, spec.ConnectionOpen(ctx.vhost)),
        method_frame(1, spec.ChannelOpen()),
        method_frame(1, spec.QueueDeclare("", exclusive=True)),
    )
    await raw_replies(conn, b"".join(frames), 3)


@scenario(E("content-type kept", ok=True))
async def property_strings_not_utf8(ctx: Context) -> None:
    # a content-type of bytes that are not UTF-8 is passed on, dead-lettered too
    ch = await ctx.channel()
    dlq, work = ctx.q("dlq"), ctx.q("work")
    await ch.call(spec.QueueDeclare(queue=dlq))
    dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    await ch.call(spec.QueueDeclare(queue=work, arguments=dead_letter))
    await ch.call(spec.BasicConsume(queue=dlq, consumer_tag="dead", no_ack=True))
    publish = encode_frame(1, ch.number, spec.BasicPublish("", work).encode())
    raw = struct.pack(">H", 0x8000) + b"\x02\xff\xfe"
    header = encode_frame(2, ch.number, content_header_payload(60, 1, raw))
    ch.conn.send_raw(publish + header + encode_frame(3, ch.number, b"x"))
    got = await ch.get(work)
    kept = isinstance(got, ContentReceived) and got.raw_properties == raw
    if isinstance(got, ContentReceived) and isinstance(got.method, spec.BasicGetOk):
        ch.send(spec.BasicReject(got.method.delivery_tag, requeue=False))
    dead = await ch.receive()
    kept = kept and isinstance(dead, ContentReceived) and dead.raw_properties[2:5] == raw[2:]
    ctx.check(kept, "content-type kept")


@scenario(
    E("channel.close", reply_code=406),
    E("queue.declare-ok"),
    E("basic.get-ok"),
)
async def timestamps_and_long_ttls(ctx: Context) -> None:
    # a timestamp is no integer, however late; a TTL or expiry over ten years is too large
    late, early = Timestamp(2**64 - 1), datetime(2020, 1, 2, tzinfo=UTC)
    for arg, value in (
        ("x-message-ttl", late),
        ("x-expires", early),
        ("x-max-length", late),
        ("x-message-ttl", 315360000000),
        ("x-message-ttl", 315360000001),
        ("x-expires", 315360000001),
    ):
        ch = await ctx.channel()
        await ch.call(spec.QueueDeclare(queue=ctx.q("ttl"), exclusive=True, arguments={arg: value}))
    ch = await ctx.channel()
    q = ctx.q("expiring")
    await ch.call(spec.QueueDeclare(queue=q, exclusive=True))
    for expiration in ("315360000000", "315360000001"):
        ch.publish("", q, "x", properties=BasicProperties(expiration=expiration))
        await ch.get(q, no_ack=True)
