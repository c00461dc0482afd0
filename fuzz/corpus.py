"""The seed corpus: the frames real clients send, as lists of whole frames.

A stream is the protocol header, the handshake (start-ok, tune-ok, open), channel.open and
a few conversations (declarations, publishes with every kind of property and header,
consumers with acks, transactions, confirms, dead-lettering, channels opening and
closing), sometimes ending with connection.close. The mutators (:mod:`fuzz.mutate`) work on these
lists. Queue names come from a small set and queues expire (``x-expires``) or are
exclusive, so a long run does not make the broker's state grow without bound.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kiltmq.protocol import spec
from kiltmq.protocol.codec import Timestamp, encode_table
from kiltmq.protocol.frames import (
    HEARTBEAT_FRAME,
    content_frames,
    content_header_payload,
    method_frame,
)

FRAME_MAX = 4096
"""The frame_max the fuzzer's tune-ok asks for: small, so bodies take several frames."""

Frames = list[bytes]
Conversation = Callable[[random.Random, int], Frames]
"""Frames of one conversation on the given channel (opened before them)."""

QUEUES = ("fz.a", "fz.b", "fz.dead", "fz.prio", "fz.tx")
EXCHANGES = (("fz.direct", "direct"), ("fz.topic", "topic"), ("fz.fan", "fanout"))
HEADERS_EXCHANGE = "fz.headers"
# Every queue expires unused and holds a bounded number of messages.
BOUNDED: dict[str, Any] = {"x-expires": 20000, "x-max-length": 50}


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


ODD_VALUES: dict[str, Any] = {
    "ts": Timestamp(2**64 - 1),
    "when": datetime(2020, 1, 2, tzinfo=UTC),
    "deep": _deep(70),
    "dec": Decimal("-12.345"),
    "f": 1.5,
    "big": 2**40,
    "raw": b"\x00\xff",
    "none": None,
    "list": [1, "two", [3.0, {"four": True}], None],
    "flag": False,
}


def m(channel: int, method: spec.Method) -> bytes:
    return method_frame(channel, method)


def publish(
    channel: int,
    exchange: str,
    key: str,
    body: bytes,
    properties: spec.BasicProperties | None = None,
    *,
    mandatory: bool = False,
) -> Frames:
    """basic.publish with its header and body frames, one list item per frame."""
    wire = content_frames(
        channel,
        spec.BasicPublish(exchange=exchange, routing_key=key, mandatory=mandatory).encode(),
        content_header_payload(60, len(body), properties),
        body,
        FRAME_MAX,
    )
    return split_frames(wire)


def split_frames(wire: bytes) -> Frames:
    """Whole frames, one item each, from well-formed ``wire`` bytes."""
    frames = []
    pos = 0
    while pos < len(wire):
        (size,) = struct.unpack_from(">I", wire, pos + 3)
        frames.append(wire[pos : pos + 8 + size])
        pos += 8 + size
    return frames


def handshake(rng: random.Random) -> Frames:
    """Protocol header, start-ok (PLAIN or AMQPLAIN, odd client properties), tune-ok, open."""
    properties: dict[str, Any] = {
        "product": "kiltmq fuzz",
        "capabilities": {
            "publisher_confirms": True,
            "consumer_cancel_notify": True,
            "connection.blocked": True,
            "authentication_failure_close": rng.random() < 0.5,
        },
        "connection_name": f"fuzz-{rng.randrange(1000)}",
    }
    if rng.random() < 0.5:
        properties.update(ODD_VALUES)
    if rng.random() < 0.5:
        mechanism, response = "PLAIN", b"\x00guest\x00guest"
    else:
        mechanism = "AMQPLAIN"
        response = encode_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
    return [
        spec.PROTOCOL_HEADER,
        m(0, spec.ConnectionStartOk(properties, mechanism, response, "en_US")),
        m(0, spec.ConnectionTuneOk(channel_max=32, frame_max=FRAME_MAX, heartbeat=0)),
        m(0, spec.ConnectionOpen(virtual_host="/")),
        m(1, spec.ChannelOpen()),
    ]


def _properties(rng: random.Random) -> spec.BasicProperties:
    headers: dict[str, Any] = {"n": rng.randrange(3), "s": "text"}
    if rng.random() < 0.5:
        headers.update(ODD_VALUES)
    if rng.random() < 0.3:
        headers["CC"] = ["fz.b", "fz.a"]
        headers["BCC"] = ["fz.dead"]
    return spec.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=rng.choice([1, 2]),
        priority=rng.randrange(10),
        correlation_id="corr-1",
        reply_to="reply-queue" if rng.random() < 0.95 else "amq.rabbitmq.reply-to",
        expiration=rng.choice(["60000", "0", "1"]),
        message_id="mid-1",
        timestamp=rng.choice([0, 1700000000, 2**64 - 1]),
        type="fuzz",
        user_id="guest" if rng.random() < 0.95 else "someone",
        app_id="fuzz",
        cluster_id="",
    )


def _body(rng: random.Random) -> bytes:
    return rng.choice([b"", b"x", b"hello world" * 3, rng.randbytes(FRAME_MAX * 2 + 17)])


def declarations(rng: random.Random, ch: int) -> Frames:
    frames = []
    for name, kind in EXCHANGES:
        frames.append(m(ch, spec.ExchangeDeclare(name, kind)))
    alternate = {"alternate-exchange": "fz.fan"}
    frames.append(m(ch, spec.ExchangeDeclare(HEADERS_EXCHANGE, "headers", arguments=alternate)))
    dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "fz.dead"}
    args: list[dict[str, Any]] = [
        BOUNDED,
        {**BOUNDED, "x-message-ttl": 1000, **dead_letter},
        BOUNDED,
        {**BOUNDED, "x-max-priority": 5, "x-overflow": "reject-publish"},
        {**BOUNDED, "x-single-active-consumer": True, "odd": ODD_VALUES},
    ]
    for queue, arguments in zip(QUEUES, args, strict=True):
        frames.append(m(ch, spec.QueueDeclare(queue, arguments=arguments)))
    frames += [
        m(ch, spec.QueueDeclare("", exclusive=True, arguments={"x-max-length-bytes": 10000})),
        m(ch, spec.QueueDeclare("fz.a", passive=True)),
        m(ch, spec.QueueBind("fz.a", "fz.direct", "k1")),
        m(ch, spec.QueueBind("fz.b", "fz.topic", "a.#")),
        m(ch, spec.QueueBind("fz.prio", "fz.fan", "")),
        m(ch, spec.QueueBind("fz.a", HEADERS_EXCHANGE, "", arguments={"x-match": "any", "n": 1})),
        m(
            ch,
            spec.QueueBind("fz.b", HEADERS_EXCHANGE, "", arguments={"x-match": "all", "s": "text"}),
        ),
        m(ch, spec.ExchangeBind("fz.fan", "fz.topic", "b.*")),
        m(ch, spec.ExchangeUnbind("fz.fan", "fz.topic", "b.*")),
        m(ch, spec.QueueUnbind("fz.b", "fz.topic", "a.#")),
        m(ch, spec.QueuePurge("fz.dead")),
        m(ch, spec.QueueDelete("fz.gone", if_unused=True, if_empty=True)),
        m(ch, spec.ExchangeDelete("fz.gone-x", if_unused=True)),
    ]
    return frames


def publishes(rng: random.Random, ch: int) -> Frames:
    frames: Frames = []
    targets = [
        ("", "fz.a"),
        ("fz.direct", "k1"),
        ("fz.topic", "a.b.c"),
        ("fz.fan", ""),
        (HEADERS_EXCHANGE, ""),
        ("", "fz.prio"),
        ("", "nowhere"),
    ]
    for _ in range(rng.randrange(2, 6)):
        exchange, key = rng.choice(targets)
        props = _properties(rng) if rng.random() < 0.7 else None
        frames += publish(ch, exchange, key, _body(rng), props, mandatory=rng.random() < 0.3)
    return frames


def consuming(rng: random.Random, ch: int) -> Frames:
    frames = [
        m(ch, spec.BasicQos(prefetch_count=rng.randrange(3, 6), global_=rng.random() < 0.3)),
        m(ch, spec.BasicConsume("fz.a", "ctag-1")),
        m(ch, spec.BasicConsume("fz.prio", "ctag-2", no_ack=True)),
    ]
    for body in (b"one", b"two", b"three"):
        frames += publish(ch, "", "fz.a", body, _properties(rng))
    frames += [
        m(ch, spec.BasicAck(1)),
        m(ch, spec.BasicNack(2, requeue=rng.random() < 0.5)),
        m(ch, spec.BasicReject(3, requeue=rng.random() < 0.5)),
        m(ch, spec.BasicGet("fz.a")),
        m(ch, spec.BasicRecover(requeue=True)),
        m(ch, spec.BasicAck(0, multiple=True)),
        m(ch, spec.BasicCancel("ctag-1")),
        m(ch, spec.BasicGet("fz.prio", no_ack=True)),
        m(ch, spec.BasicConsume("amq.rabbitmq.reply-to", "rpc", no_ack=True)),
    ]
    reply = spec.BasicProperties(reply_to="amq.rabbitmq.reply-to")
    frames += publish(ch, "", "fz.prio", b"rpc", reply)
    return frames


def transactions(rng: random.Random, ch: int) -> Frames:
    frames = publish(ch, "", "fz.tx", b"before")
    frames += [m(ch, spec.TxSelect()), m(ch, spec.BasicGet("fz.tx"))]
    frames += publish(ch, "", "fz.tx", b"tx one")
    frames += publish(ch, "fz.direct", "k1", b"tx two", _properties(rng))
    frames += [m(ch, spec.BasicAck(1)), m(ch, spec.TxCommit())]
    frames += publish(ch, "", "fz.tx", b"tx three")
    frames += [m(ch, spec.BasicGet("fz.tx")), m(ch, spec.BasicNack(0, multiple=True))]
    frames += [m(ch, spec.TxRollback())]
    return frames


def confirms(rng: random.Random, ch: int) -> Frames:
    frames = [m(ch, spec.ConfirmSelect())]
    for i in range(rng.randrange(1, 4)):
        frames += publish(ch, "", "fz.a", b"confirm %d" % i, mandatory=True)
    frames += publish(ch, "missing-exchange", "k", b"404")  # closes the channel
    return frames


def dead_letters(rng: random.Random, ch: int) -> Frames:
    frames = publish(ch, "", "fz.b", b"to die", _properties(rng))
    frames += [
        m(ch, spec.BasicGet("fz.b")),
        m(ch, spec.BasicReject(1, requeue=False)),
        m(ch, spec.BasicGet("fz.dead", no_ack=True)),
        # inequivalent: closes the channel
        m(ch, spec.QueueDeclare("fz.b", arguments={**BOUNDED, "x-message-ttl": 0})),
    ]
    return frames


def channels(rng: random.Random, ch: int) -> Frames:
    other = ch + 16
    return [
        m(ch, spec.BasicQos(prefetch_count=1)),
        m(ch, spec.ChannelFlow(active=True)),
        m(other, spec.ChannelOpen()),
        m(ch, spec.ChannelClose(200, "bye", 0, 0)),
        HEARTBEAT_FRAME,
        m(other, spec.QueueDeclare("fz.a", passive=True)),
        m(other, spec.ChannelClose(200, "bye", 0, 0)),
    ]


CONVERSATIONS: tuple[Conversation, ...] = (
    publishes,
    consuming,
    transactions,
    confirms,
    dead_letters,
    channels,
)

CLOSE = m(0, spec.ConnectionClose(200, "bye", 0, 0))


def stream(rng: random.Random) -> tuple[Frames, int]:
    """A whole conversation, and the index of its first frame after the handshake."""
    frames = handshake(rng)
    login = len(frames)
    frames += declarations(rng, 1)
    for ch, conversation in enumerate(rng.sample(CONVERSATIONS, rng.randrange(1, 5)), 2):
        frames.append(m(ch, spec.ChannelOpen()))
        frames += conversation(rng, ch)
    if rng.random() < 0.1:
        # mostly left to EOF: the broker drops its replies once a pipelined close is read
        frames.append(CLOSE)
    return frames, login


def samples(rng: random.Random, n: int = 40) -> Frames:
    """Frames of every kind, for splicing into other streams."""
    pool: Frames = []
    while len(pool) < n:
        frames, _ = stream(rng)
        pool += frames[1:]
    return pool
