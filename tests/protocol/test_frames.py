"""The frame layer: FrameReader fed in pieces, its limits and errors, and frame writing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiltmq.protocol import spec
from kiltmq.protocol.errors import FrameError
from kiltmq.protocol.frames import (
    HEARTBEAT_FRAME,
    FrameReader,
    content_frames,
    content_header_payload,
    encode_frame,
    method_frame,
)

from .strategies import SETTINGS

Frame = tuple[int, int, bytes]

PUBLISH = spec.BasicPublish("amq.direct", "rk")
FRAMES: list[Frame] = [
    (1, 0, spec.ConnectionStartOk({"product": "x"}, "PLAIN", b"\0u\0p", "en_US").encode()),
    (1, 1, PUBLISH.encode()),
    (2, 1, content_header_payload(60, 5, spec.BasicProperties(content_type="text/plain"))),
    (3, 1, b"hello"),
    (8, 0, b""),
    (1, 65535, spec.BasicAck(2**64 - 1, True).encode()),
    (3, 7, bytes(range(256)) * 4),
]
STREAM = b"".join(encode_frame(t, c, p) for t, c, p in FRAMES)


def feed_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list[Frame]:
    frames: list[Frame] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        frames += reader.feed(data[start:cut])
        start = cut
    return frames


def test_heartbeat_frame_bytes() -> None:
    assert HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"


def test_whole_stream_at_once() -> None:
    assert FrameReader().feed(STREAM) == FRAMES


def test_split_at_every_byte_position() -> None:
    for cut in range(len(STREAM) + 1):
        reader = FrameReader()
        assert feed_in_pieces(reader, STREAM, [cut]) == FRAMES, cut


def test_byte_by_byte() -> None:
    reader = FrameReader()
    frames: list[Frame] = []
    for i in range(len(STREAM)):
        frames += reader.feed(STREAM[i : i + 1])
    assert frames == FRAMES


def test_frames_are_returned_as_soon_as_complete() -> None:
    reader = FrameReader()
    first = encode_frame(3, 1, b"abc")
    assert reader.feed(first[:-1]) == []
    assert reader.feed(first[-1:] + b"\x03") == [(3, 1, b"abc")]
    assert reader.feed(b"\x00\x01\x00\x00\x00\x00\xce") == [(3, 1, b"")]


@SETTINGS
@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_random_splits(cuts: list[int]) -> None:
    assert feed_in_pieces(FrameReader(), STREAM, cuts) == FRAMES


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 8]), st.integers(0, 65535), st.binary(max_size=600)),
        max_size=8,
    ),
    st.data(),
)
def test_random_frames_random_splits(frames: list[Frame], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(t, c, p) for t, c, p in frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    assert feed_in_pieces(FrameReader(), stream, cuts) == frames


def test_server_mode_reads_the_protocol_header_first() -> None:
    stream = spec.PROTOCOL_HEADER + STREAM
    for cut in range(0, 20):
        reader = FrameReader(server=True)
        assert reader.protocol_header is None
        assert feed_in_pieces(reader, stream, [cut]) == FRAMES
        assert reader.protocol_header == spec.PROTOCOL_HEADER
    reader = FrameReader(server=True)
    assert reader.feed(b"AMQP\x00\x00") == []
    assert reader.protocol_header is None
    # any 8 bytes are taken as the header; judging it is the connection's business
    assert reader.feed(b"\x01\x01") == []
    assert reader.protocol_header == b"AMQP\x00\x00\x01\x01"


def test_client_mode_expects_no_header() -> None:
    reader = FrameReader()
    assert reader.protocol_header == b""
    assert reader.feed(HEARTBEAT_FRAME) == [(8, 0, b"")]


# -- limits and errors ---------------------------------------------------------------------


def test_frame_max_is_enforced_from_the_frame_header_alone() -> None:
    reader = FrameReader(frame_max=4096)
    # a body frame announcing 4089 payload bytes: 4097 on the wire, one over frame_max
    header = b"\x03\x00\x01\x00\x00\x0f\xf9"
    with pytest.raises(FrameError) as info:
        reader.feed(header)  # not one payload byte has arrived
    assert info.value.reply_code == 501
    assert "4096" in info.value.reply_text


def test_frame_of_exactly_frame_max_is_accepted() -> None:
    reader = FrameReader(frame_max=4096)
    frame = encode_frame(3, 1, b"x" * 4088)
    assert len(frame) == 4096
    assert reader.feed(frame) == [(3, 1, b"x" * 4088)]


def test_frame_max_zero_means_no_limit_and_can_change() -> None:
    reader = FrameReader(frame_max=0)
    assert reader.frame_max == 0xFFFFFFFF + 8
    big = encode_frame(3, 1, b"y" * 200_000)
    assert reader.feed(big) == [(3, 1, b"y" * 200_000)]
    reader.frame_max = 4096
    assert reader.frame_max == 4096
    with pytest.raises(FrameError):
        reader.feed(big)


def test_initial_frame_max_is_rabbitmqs_default() -> None:
    reader = FrameReader()
    assert reader.frame_max == 131072
    with pytest.raises(FrameError):
        reader.feed(encode_frame(3, 1, b"z" * 131065)[:7])


def test_bad_frame_end_octet() -> None:
    frame = bytearray(encode_frame(1, 1, PUBLISH.encode()))
    frame[-1] = 0xCD
    with pytest.raises(FrameError) as info:
        FrameReader().feed(bytes(frame))
    assert info.value.reply_code == 501
    assert "0xcd" in info.value.reply_text


@pytest.mark.parametrize("frame_type", [0, 4, 7, 9, 65, 255])
def test_unknown_frame_type(frame_type: int) -> None:
    with pytest.raises(FrameError) as info:
        FrameReader().feed(encode_frame(frame_type, 0, b"abc"))
    assert info.value.reply_code == 501
    assert str(frame_type) in info.value.reply_text


def test_protocol_header_instead_of_frames() -> None:
    # what a server that does not speak 0-9-1 answers a client (here: AMQP 1.0)
    with pytest.raises(FrameError) as info:
        FrameReader().feed(b"AMQP\x00\x01\x00\x00")
    assert info.value.reply_code == 501
    assert info.value.reply_text == (
        "received protocol header b'AMQP\\x00\\x01\\x00\\x00' instead of a frame"
    )


def test_http_request_instead_of_frames() -> None:
    # a client's first bytes are read as a frame header: 'G' is not a frame type
    with pytest.raises(FrameError):
        FrameReader().feed(b"GET / HTTP/1.1\r\n\r\n")


def test_frames_before_an_error_are_returned_first() -> None:
    good = encode_frame(3, 1, b"ok")
    bad = bytearray(encode_frame(3, 1, b"no"))
    bad[-1] = 0
    reader = FrameReader()
    assert reader.feed(good + bytes(bad)) == [(3, 1, b"ok")]
    with pytest.raises(FrameError):
        reader.feed(b"")
    with pytest.raises(FrameError):  # and it stays broken
        reader.feed(good)


# -- large bodies --------------------------------------------------------------------------


def test_large_frame_arriving_in_many_reads() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = encode_frame(3, 9, payload) + encode_frame(8, 0, b"") + encode_frame(3, 9, b"t")
    reader = FrameReader(frame_max=2 * 1024 * 1024)
    frames: list[Frame] = []
    calls_with_frames = 0
    for start in range(0, len(stream), 1000):
        got = reader.feed(stream[start : start + 1000])
        calls_with_frames += bool(got)
        frames += got
    assert frames == [(3, 9, payload), (8, 0, b""), (3, 9, b"t")]
    assert calls_with_frames <= 2


def test_large_frame_end_octet_checked_after_buffering() -> None:
    frame = bytearray(encode_frame(3, 1, b"q" * 100_000))
    frame[-1] = 0
    reader = FrameReader()
    assert reader.feed(bytes(frame[:50_000])) == []
    with pytest.raises(FrameError):
        reader.feed(bytes(frame[50_000:]))


@SETTINGS
@given(st.integers(70_000, 300_000), st.lists(st.integers(0, 300_100), max_size=30))
def test_large_frame_random_splits(size: int, cuts: list[int]) -> None:
    payload = b"\x5a" * size
    stream = encode_frame(3, 1, payload) + HEARTBEAT_FRAME
    cuts = [c for c in cuts if c <= len(stream)]
    frames = feed_in_pieces(FrameReader(frame_max=0), stream, cuts)
    assert frames == [(3, 1, payload), (8, 0, b"")]


# -- writing -------------------------------------------------------------------------------


def test_method_frame_and_encode_frame_agree() -> None:
    assert method_frame(3, PUBLISH) == encode_frame(1, 3, PUBLISH.encode())
    assert encode_frame(3, 258, b"ab") == b"\x03\x01\x02\x00\x00\x00\x02ab\xce"


def split_content(
    body: bytes, frame_max: int, props: spec.BasicProperties | None = None
) -> list[Frame]:
    wire = content_frames(
        5, PUBLISH.encode(), content_header_payload(60, len(body), props), body, frame_max
    )
    return FrameReader(frame_max=frame_max).feed(wire)


@pytest.mark.parametrize(
    ("size", "frame_max", "bodies"),
    [
        (0, 4096, 0),  # no body frame at all for an empty body
        (1, 4096, 1),
        (4088, 4096, 1),  # exactly frame_max - 8: one full frame
        (4089, 4096, 2),
        (3 * 4088, 4096, 3),
        (3 * 4088 + 1, 4096, 4),
        (1_000_000, 131072, 8),
        (1_000_000, 0, 1),  # no limit
    ],
)
def test_content_frames_split_bodies_by_frame_max(size: int, frame_max: int, bodies: int) -> None:
    body = bytes(i % 251 for i in range(size))
    frames = split_content(body, frame_max)
    assert [f[0] for f in frames] == [1, 2] + [3] * bodies
    assert all(channel == 5 for _, channel, _ in frames)
    assert frames[0][2] == PUBLISH.encode()
    assert int.from_bytes(frames[1][2][4:12]) == size
    chunks = [payload for ftype, _, payload in frames if ftype == 3]
    assert b"".join(chunks) == body
    if frame_max:
        assert all(len(c) <= frame_max - 8 for c in chunks)
        assert all(len(c) == frame_max - 8 for c in chunks[:-1])


@SETTINGS
@given(st.binary(max_size=20_000), st.integers(4096, 9000))
def test_content_frames_random(body: bytes, frame_max: int) -> None:
    props = spec.BasicProperties(message_id="m", headers={"k": [1, "v"]})
    frames = split_content(body, frame_max, props)
    assert spec.BasicProperties.decode(frames[1][2], 12) == spec.BasicProperties(
        message_id="m", headers={"k": [1, "v"]}
    )
    assert b"".join(p for t, _, p in frames if t == 3) == body
    assert all(len(p) + 8 <= frame_max for _, _, p in frames)
