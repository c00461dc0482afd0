"""Protocol codec: encode and decode one message's frames, kiltmq's protocol core vs pamqp.

Two scenarios, each one message: a method frame + a content header frame (content-type,
delivery-mode and a two-entry headers table) + one body frame of 100 bytes:

* ``publish``: basic.publish as a client writes it and a broker reads it;
* ``deliver``: basic.deliver as a broker writes it and a client reads it.

Measured, in messages per second:

* encode, kiltmq: ``method.encode()`` + :func:`content_header_payload` (properties encoded
  from a new :class:`BasicProperties` each time) + :func:`content_frames` -> wire bytes;
* encode, pamqp: ``pamqp.frame.marshal`` of the method, a ``ContentHeader`` (new
  ``Basic.Properties`` each time) and a ``ContentBody``;
* decode, kiltmq: ``Connection.receive_data`` (frame reader, state machine, content assembly)
  on a connection in the right role with the channel open -> one ``ContentReceived``; then
  ``event.properties()``, so the properties are decoded as pamqp decodes them. Also reported
  without that step ("properties left encoded"): the broker passes them on encoded and the
  client decodes them only when the application reads them, so that is the real path;
* decode, pamqp: ``pamqp.frame.unmarshal`` three times (method, header with properties, body),
  as its users do.

Both sides encode the same message and both decoders read the same bytes. Run with
``python -m benchmarks protocol_codec`` (about 20 s); ``KILTMQ_BENCH_SECONDS`` sets the
time per measurement (default 1.5).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from pamqp import base as pamqp_base
from pamqp import body as pamqp_body
from pamqp import commands as pamqp_commands
from pamqp import common as pamqp_common
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header

from kiltmq.protocol import spec
from kiltmq.protocol.connection import Connection, ContentReceived, ProtocolError, Role
from kiltmq.protocol.frames import content_frames, content_header_payload

CHANNEL = 1
FRAME_MAX = 131072
BODY = bytes(range(100))
EXCHANGE = "bench.exchange"
ROUTING_KEY = "bench.routing.key"
CONSUMER_TAG = "ctag-1.bench"
CONTENT_TYPE = "application/json"
HEADERS: dict[str, str | int] = {"x-source": "bench", "x-attempt": 1}
PAMQP_HEADERS: pamqp_common.FieldTable = dict(HEADERS)


BATCH_SECONDS = 0.05


def _batch_size(fn: Callable[[], object]) -> int:
    """Calls of ``fn`` that take about ``BATCH_SECONDS``."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > BATCH_SECONDS / 4:
            return max(1, int(batch * BATCH_SECONDS / elapsed))
        batch *= 4


def measure(fns: list[Callable[[], object]], seconds: float) -> list[float]:
    """Operations per second of each of ``fns``.

    The functions take turns, one batch of about 50 ms each, until each has run for about
    ``seconds``; each is credited with its fastest batch (as ``timeit`` advises: slower
    batches measure interference from the rest of the machine, not the code), and taking
    turns exposes them alike to the load of the moment.
    """
    batches = [_batch_size(fn) for fn in fns]
    best = [0.0] * len(fns)
    for _ in range(max(1, round(seconds / BATCH_SECONDS))):
        for i, (fn, batch) in enumerate(zip(fns, batches, strict=True)):
            start = time.perf_counter()
            for _ in range(batch):
                fn()
            best[i] = max(best[i], batch / (time.perf_counter() - start))
    return best


# -- kiltmq --------------------------------------------------------------------------------


def _opened(role: Role) -> Connection:
    """A connection of ``role`` through the handshake with channel 1 open, driven by a peer
    connection in memory."""
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)

    def pump(src: Connection, dst: Connection) -> None:
        for event in dst.receive_data(src.data_to_send()):
            assert not isinstance(event, ProtocolError), event

    client.send_protocol_header()
    pump(client, server)
    server.send_method(0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US"))
    pump(server, client)
    client.send_method(0, spec.ConnectionStartOk({}, "PLAIN", b"\0guest\0guest", "en_US"))
    pump(client, server)
    server.send_method(0, spec.ConnectionTune(2047, FRAME_MAX, 60))
    pump(server, client)
    client.send_method(0, spec.ConnectionTuneOk(2047, FRAME_MAX, 60))
    client.send_method(0, spec.ConnectionOpen("/"))
    pump(client, server)
    server.send_method(0, spec.ConnectionOpenOk())
    pump(server, client)
    client.send_method(CHANNEL, spec.ChannelOpen())
    pump(client, server)
    server.send_method(CHANNEL, spec.ChannelOpenOk())
    pump(server, client)
    return client if role is Role.CLIENT else server


def ours_encoder(method: spec.Method) -> Callable[[], bytes]:
    def encode() -> bytes:
        props = spec.BasicProperties(content_type=CONTENT_TYPE, delivery_mode=2, headers=HEADERS)
        return content_frames(
            CHANNEL,
            method.encode(),
            content_header_payload(60, len(BODY), props),
            BODY,
            FRAME_MAX,
        )

    return encode


def ours_decoder(data: bytes, role: Role, properties: bool) -> Callable[[], object]:
    conn = _opened(role)
    receive = conn.receive_data

    def decode() -> object:
        (event,) = receive(data)
        assert isinstance(event, ContentReceived)
        return event.properties() if properties else event

    def decode_raw() -> object:
        (event,) = receive(data)
        return event

    return decode if properties else decode_raw


# -- pamqp ---------------------------------------------------------------------------------


def pamqp_encoder(method: pamqp_base.Frame) -> Callable[[], bytes]:
    marshal = pamqp_frame.marshal

    def encode() -> bytes:
        props = pamqp_commands.Basic.Properties(
            content_type=CONTENT_TYPE, delivery_mode=2, headers=PAMQP_HEADERS
        )
        return b"".join(
            (
                marshal(method, CHANNEL),
                marshal(pamqp_header.ContentHeader(0, len(BODY), props), CHANNEL),
                marshal(pamqp_body.ContentBody(BODY), CHANNEL),
            )
        )

    return encode


def pamqp_decoder(data: bytes) -> Callable[[], object]:
    unmarshal = pamqp_frame.unmarshal

    def decode() -> object:
        offset = 0
        frames = []
        for _ in range(3):
            consumed, _channel, frame = unmarshal(data[offset:])
            offset += consumed
            frames.append(frame)
        return frames

    return decode


# -- running -------------------------------------------------------------------------------


def check_same_wire(ours: bytes, theirs: bytes) -> None:
    """Both encoders must produce equivalent frames (same bytes, up to the integer type code
    pamqp picks in the headers table)."""
    _, _, method = pamqp_frame.unmarshal(ours)
    _, _, method2 = pamqp_frame.unmarshal(theirs)
    assert isinstance(method, pamqp_base.Frame) and isinstance(method2, pamqp_base.Frame)
    assert list(method) == list(method2), (list(method), list(method2))
    assert len(ours) == len(theirs) + 3, (len(ours), len(theirs))  # 'I' int32 vs 'b' int8


def scenario(
    name: str, ours_method: spec.Method, their_method: pamqp_base.Frame, role: Role, seconds: float
) -> list[tuple[str, float, float]]:
    encode_ours = ours_encoder(ours_method)
    encode_theirs = pamqp_encoder(their_method)
    wire = encode_ours()
    check_same_wire(wire, encode_theirs())
    enc_ours, enc_theirs = measure([encode_ours, encode_theirs], seconds)
    dec_ours, dec_raw, dec_theirs = measure(
        [
            ours_decoder(wire, role, properties=True),
            ours_decoder(wire, role, properties=False),
            pamqp_decoder(wire),
        ],
        seconds,
    )
    return [
        (f"{name}: encode", enc_ours, enc_theirs),
        (f"{name}: decode", dec_ours, dec_theirs),
        (f"{name}: decode, properties left encoded", dec_raw, dec_theirs),
    ]


def main() -> int:
    seconds = float(os.environ.get("KILTMQ_BENCH_SECONDS", "1.5"))
    rows = scenario(
        "basic.publish",
        spec.BasicPublish(EXCHANGE, ROUTING_KEY),
        pamqp_commands.Basic.Publish(exchange=EXCHANGE, routing_key=ROUTING_KEY),
        Role.SERVER,
        seconds,
    )
    rows += scenario(
        "basic.deliver",
        spec.BasicDeliver(CONSUMER_TAG, 123456, False, EXCHANGE, ROUTING_KEY),
        pamqp_commands.Basic.Deliver(
            consumer_tag=CONSUMER_TAG,
            delivery_tag=123456,
            redelivered=False,
            exchange=EXCHANGE,
            routing_key=ROUTING_KEY,
        ),
        Role.CLIENT,
        seconds,
    )
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {seconds:.1f} s per cell"
        f" in alternating batches of {BATCH_SECONDS * 1000:.0f} ms (the fastest counts)"
    )
    print("messages per second; one message = method + content header + 100-byte body frame")
    print(f"| {'operation':<46} | {'kiltmq':>9} | {'pamqp':>9} | {'ratio':>5} |")
    print(f"|{'-' * 48}|{'-' * 10}:|{'-' * 10}:|{'-' * 6}:|")
    for op, ours, theirs in rows:
        print(f"| {op:<46} | {ours:>9,.0f} | {theirs:>9,.0f} | {ours / theirs:>4.1f}x |")
    worst = min(ours / theirs for op, ours, theirs in rows if "left encoded" not in op)
    print(f"lowest ratio (properties decoded on both sides): {worst:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
