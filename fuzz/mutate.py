"""Mutations of a list of frames: a few per stream, each at one frame.

Bit flips and interesting bytes anywhere in a frame; the payload cut short with the frame
size fixed up (the decoders see a truncated method) or not (the framing breaks); the
size field or a length inside the payload set to an edge value; frames duplicated,
dropped, swapped, moved to another channel or given another type; frames of other
conversations spliced in; field-table type codes swapped for others; method ids
rewritten; random bytes inserted; the stream cut anywhere.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from kiltmq.protocol import spec

Frames = list[bytes]
Mutator = Callable[[random.Random, Frames, int, Frames], None]

INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF, 0xCE, ord("F"), ord("A"), ord("T"), ord("S"))
INTERESTING_32 = (0, 1, 2, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
TYPE_CODES = b"tbBsuIilfdDSxATFVZcU\x00"
METHOD_IDS = tuple(spec.METHODS)


def _frame(rng: random.Random, frames: Frames, start: int) -> int:
    return rng.randrange(start, len(frames))


def _with_payload(frame: bytes, payload: bytes) -> bytes:
    """``frame`` with its payload replaced and its size field fixed up."""
    return frame[:3] + struct.pack(">I", len(payload)) + payload + b"\xce"


def flip_bits(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    data = bytearray(frames[i])
    if not data:
        return
    for _ in range(rng.randrange(1, 5)):
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
    frames[i] = bytes(data)


def interesting_byte(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    data = bytearray(frames[i])
    if len(data) > 8:
        data[rng.randrange(7, len(data) - 1)] = rng.choice(INTERESTING_8)
        frames[i] = bytes(data)


def length_field(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    """A 32-bit or 8-bit length inside the payload (or anything there) set to an edge."""
    i = _frame(rng, frames, start)
    frame = frames[i]
    payload = bytearray(frame[7:-1])
    if len(payload) < 5:
        return
    pos = rng.randrange(len(payload) - 4)
    if rng.random() < 0.5:
        value = rng.choice((*INTERESTING_32, len(payload) - pos - 4, len(payload) - pos - 3))
        payload[pos : pos + 4] = struct.pack(">I", value & 0xFFFFFFFF)
    else:
        payload[pos] = rng.choice((0, 1, 0xFF, len(payload) - pos, len(payload) - pos - 2)) & 0xFF
    frames[i] = _with_payload(frame, bytes(payload))


def frame_size(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frame = frames[i]
    (size,) = struct.unpack_from(">I", frame, 3)
    value = rng.choice((0, size - 1, size + 1, 4088, 4089, 0xFFFFFFFF, rng.randrange(2**32)))
    frames[i] = frame[:3] + struct.pack(">I", max(value, 0)) + frame[7:]


def truncate_payload(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frame = frames[i]
    payload = frame[7:-1]
    if payload:
        frames[i] = _with_payload(frame, payload[: rng.randrange(len(payload))])


def extend_payload(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frame = frames[i]
    frames[i] = _with_payload(frame, frame[7:-1] + rng.randbytes(rng.randrange(1, 20)))


def cut_stream(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frames[i] = frames[i][: rng.randrange(len(frames[i]) + 1)]
    del frames[i + 1 :]


def splice(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    frames.insert(rng.randrange(start, len(frames) + 1), rng.choice(pool))


def duplicate(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frames.insert(i, frames[i])


def drop(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    if len(frames) > start + 1:
        del frames[_frame(rng, frames, start)]


def swap(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    j = _frame(rng, frames, start)
    frames[i], frames[j] = frames[j], frames[i]


def channel_number(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frame = frames[i]
    if len(frame) >= 7:
        channel = rng.choice((0, 1, 2, 3, 31, 32, 33, 0xFFFF))
        frames[i] = frame[:1] + struct.pack(">H", channel) + frame[3:]


def frame_type(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    i = _frame(rng, frames, start)
    frame = frames[i]
    if frame:
        frames[i] = bytes([rng.choice((1, 2, 3, 4, 8, 0, 0xFF, 65))]) + frame[1:]


def type_code(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    """A byte that is a field-table type code replaced by another code."""
    i = _frame(rng, frames, start)
    data = bytearray(frames[i])
    spots = [p for p in range(7, len(data) - 1) if data[p] in TYPE_CODES[:17]]
    if spots:
        data[rng.choice(spots)] = rng.choice(TYPE_CODES)
        frames[i] = bytes(data)


def method_id(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    """A method frame becomes another method (same arguments), or a random one."""
    i = _frame(rng, frames, start)
    frame = frames[i]
    if frame[:1] == b"\x01" and len(frame) >= 12:
        index = rng.choice(METHOD_IDS) if rng.random() < 0.9 else rng.randrange(2**32)
        frames[i] = frame[:7] + struct.pack(">I", index) + frame[11:]


def random_method(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    index = rng.choice(METHOD_IDS)
    payload = struct.pack(">I", index) + rng.randbytes(rng.randrange(0, 40))
    channel = rng.choice((0, 1, 2))
    frame = struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"
    frames.insert(rng.randrange(start, len(frames) + 1), frame)


def random_bytes(rng: random.Random, frames: Frames, start: int, pool: Frames) -> None:
    frames.insert(rng.randrange(start, len(frames) + 1), rng.randbytes(rng.randrange(1, 30)))


MUTATORS: tuple[tuple[Mutator, int], ...] = (
    (flip_bits, 6),
    (interesting_byte, 6),
    (length_field, 8),
    (frame_size, 2),
    (truncate_payload, 6),
    (extend_payload, 2),
    (cut_stream, 1),
    (splice, 5),
    (duplicate, 3),
    (drop, 3),
    (swap, 3),
    (channel_number, 3),
    (frame_type, 1),
    (type_code, 6),
    (method_id, 4),
    (random_method, 3),
    (random_bytes, 1),
)
_FUNCTIONS = [f for f, _ in MUTATORS]
_WEIGHTS = [w for _, w in MUTATORS]


def mutate(rng: random.Random, frames: Frames, start: int, pool: Frames) -> list[str]:
    """Apply one to three mutations to ``frames`` from index ``start`` on (in place);
    return their names."""
    names = []
    for mutator in rng.choices(_FUNCTIONS, _WEIGHTS, k=rng.choice((1, 1, 1, 2, 3))):
        if len(frames) <= start:
            break
        try:
            mutator(rng, frames, start, pool)
        except (ValueError, IndexError, struct.error):
            continue  # a frame already too broken for this one (cut short by another)
        names.append(mutator.__name__)
    return names
