"""Streams (``x-queue-type: stream``) as RabbitMQ 3.10 serves them over AMQP 0-9-1.

A :class:`StreamQueue` is an append-only log: a publish appends the message with the next
offset (0, 1, ...), written into its headers as ``x-stream-offset`` (what every delivery
carries, and how a restart finds the offsets again). Consuming removes nothing: each
consumer has its own cursor, set by the consumer argument ``x-stream-offset`` (``first``,
``last``, ``next`` (the default), an offset, a timestamp, or an interval such as ``1h``
back from now), and reads on as its prefetch allows. Acks only give credit back.

Retention works on segments, as in RabbitMQ: the log is cut in segments of
``x-stream-max-segment-size-bytes`` (default 500 MB); when a new segment starts, whole
old segments go while the log is over ``x-max-length-bytes`` or their newest message is
older than ``x-max-age``.

What RabbitMQ refuses is refused here: basic.get, no-ack consumers, consumers without a
prefetch, reject, nack, recover and purge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from kiltmq.broker.declaration import type_name
from kiltmq.broker.message import Message, kept_headers
from kiltmq.broker.queue.entry import Entry
from kiltmq.broker.queue.queue import Consumer, Queue
from kiltmq.protocol.codec import FieldTable, Long
from kiltmq.protocol.errors import AMQPNotImplemented, PreconditionFailed
from kiltmq.protocol.spec import BasicProperties

__all__ = ["SEGMENT_BYTES", "StreamQueue", "parse_age"]

#: RabbitMQ's default x-stream-max-segment-size-bytes.
SEGMENT_BYTES = 500_000_000
#: Stand-ins read back from the store in one go, after a restart.
_LOAD_BATCH = 256
_UNITS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}
_AGE = re.compile(r"^(\d+)([YMDhms])$")


def parse_age(text: str) -> int | None:
    """Seconds in a RabbitMQ age such as ``7D`` or ``1h`` (None: not one)."""
    match = _AGE.match(text)
    return None if match is None else int(match.group(1)) * _UNITS[match.group(2)]


def stamped(message: Message, offset: int) -> Message:
    """``message`` with ``x-stream-offset`` in its headers."""
    properties = message.properties
    fields = {name: getattr(properties, name) for name in properties.FIELDS}
    headers = kept_headers(message.raw_properties)
    fields["headers"] = {**headers, "x-stream-offset": Long(offset)}
    raw = BasicProperties(**fields).encode()
    return Message(message.exchange, message.routing_key, raw, message.body, message.deliver_tail)


def offset_of(message: Message) -> int:
    """The offset written into a stored message."""
    value = (message.properties.headers or {}).get("x-stream-offset")
    return value if isinstance(value, int) else 0


class _Segment:
    __slots__ = ("first", "size", "newest")

    def __init__(self, first: int, now: float) -> None:
        self.first = first
        self.size = 0
        self.newest = now


class StreamQueue(Queue):
    """An append-only log read by independent consumers."""

    type = "stream"
    stores_transient = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Messages from offset ``first`` on, and their arrival times (the clock's wall time).
        self.log: list[Message] = []
        self.times: list[float] = []
        self.first = 0
        self.cursors: dict[Consumer, int] = {}
        self.segments: list[_Segment] = []
        #: Messages of the log with their bodies in memory (not stand-ins recovered from
        #: the store and not read yet), and the bytes of those bodies.
        self.loaded = 0
        self.loaded_bytes = 0
        super().__init__(*args, **kwargs)
        self.ready = _Behind(self)

    def _settings(self, args: dict[str, Any]) -> None:
        super()._settings(args)
        self._limits = None  # x-max-length-bytes is retention here
        age = args.get("x-max-age")
        self.max_age = parse_age(age) if isinstance(age, str) else None
        segment = args.get("x-stream-max-segment-size-bytes")
        self.segment_bytes = segment if isinstance(segment, int) and segment > 0 else SEGMENT_BYTES

    @property
    def consumer_count(self) -> int:
        """0, as RabbitMQ 3.10's queue.declare-ok says of a stream, whatever its
        consumers (the management API lists them)."""
        return 0

    @property
    def _what(self) -> str:
        return f"queue '{self.name}' in vhost '{self.vhost.name}'"

    @property
    def end(self) -> int:
        """The offset the next message gets."""
        return self.first + len(self.log)

    # -- the log ----------------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        if self.deleted:
            return True
        message = stamped(message, self.end)
        now = self.vhost.wall()
        self._append(message, now)
        if self._persist:
            self._store.message_enqueued(self.vhost.name, self.name, message)
            self._store.message_arrived(self.vhost.name, self.name, message, now)
        for consumer in self.cursors:
            self._feed(consumer)
        return True

    def restore(self, entry: Entry, expires_at: float | None = None) -> None:
        self.restore_log(entry.message, None)

    def restore_log(self, message: Message, arrived_at: float | None) -> None:
        """Append a message recovered from the store, which arrived at ``arrived_at``
        (None: not recorded, by a store of an older format: now)."""
        if not self.log:
            self.first = offset_of(message)
        self._append(message, self.vhost.wall() if arrived_at is None else arrived_at)

    def _append(self, message: Message, now: float) -> None:
        segments = self.segments
        if not segments or segments[-1].size >= self.segment_bytes:
            segments.append(_Segment(self.end, now))
            self._retain(now)
        segment = segments[-1]
        segment.size += message.size
        segment.newest = now
        if not message.paged:
            self.loaded += 1
            self.loaded_bytes += message.size
        self.log.append(message)
        self.times.append(now)

    def _retain(self, now: float) -> None:
        """Drop whole old segments (never the newest) over the size or age limits."""
        segments = self.segments
        total = sum(s.size for s in segments)
        drop = 0
        while drop < len(segments) - 1:
            segment = segments[drop]
            too_big = self.max_length_bytes is not None and total > self.max_length_bytes
            too_old = self.max_age is not None and now - segment.newest > self.max_age
            if not (too_big or too_old):
                break
            total -= segment.size
            drop += 1
        if not drop:
            return
        cut = segments[drop].first - self.first
        gone = self.log[:cut]
        del self.log[:cut], self.times[:cut], segments[:drop]
        for message in gone:
            if not message.paged:
                self.loaded -= 1
                self.loaded_bytes -= message.size
        self.first += cut
        if self._persist:
            self._store.queue_purged(self.vhost.name, self.name, gone)
        for consumer, cursor in self.cursors.items():
            if cursor < self.first:
                self.cursors[consumer] = self.first

    # -- consumers ----------------------------------------------------------------------

    def check_consumer(
        self,
        no_ack: bool,
        prefetch: int,
        global_prefetch: int,
        arguments: FieldTable | None,
        describe: str,
    ) -> None:
        if no_ack:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - no-ack consumers are not supported by {describe}"
            )
        if not prefetch:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - consumer prefetch count is not set for '{describe}'"
            )
        args = arguments or {}
        if "x-priority" in args:
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg 'x-priority' for {describe} of queue "
                "type rabbit_stream_queue"
            )
        if "x-stream-offset" in args:
            self.start_of(args["x-stream-offset"], describe)

    def start_of(self, spec: Any, describe: str = "") -> int:
        """The offset a consumer with ``x-stream-offset`` ``spec`` starts at."""
        if spec == "first":
            return self.first
        if spec == "last":
            return max(self.first, self.end - 1)
        if spec == "next":
            return self.end
        if isinstance(spec, int) and not isinstance(spec, bool):
            return min(max(spec, self.first), self.end)
        since: float | None = None
        if isinstance(spec, datetime):
            since = spec.timestamp()
        elif isinstance(spec, str) and (age := parse_age(spec)) is not None:
            since = self.vhost.wall() - age
        if since is None:
            value = f'<<"{spec}">>' if isinstance(spec, str) else str(spec)
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for {describe}: "
                f"{{invalid_stream_offset_arg,{{{type_name(spec)},{value}}}}}"
            )
        for index, arrived in enumerate(self.times):
            if arrived >= since:
                return self.first + index
        return self.end

    def add_consumer(self, consumer: Consumer) -> None:
        args = consumer.arguments or {}
        self.cursors[consumer] = self.start_of(args.get("x-stream-offset", "next"))
        super().add_consumer(consumer)

    def detach_consumer(self, consumer: Consumer) -> bool:
        self.cursors.pop(consumer, None)
        return super().detach_consumer(consumer)

    def drain(self) -> None:
        for consumer in self.cursors:
            self._feed(consumer)

    def _feed(self, consumer: Consumer) -> None:
        """Deliver from ``consumer``'s cursor as far as its prefetch allows."""
        cursor = self.cursors[consumer]
        end = self.end
        channel = consumer.channel
        log = self.log
        while cursor < end and channel.can_deliver(consumer):
            index = cursor - self.first
            message = log[index]
            if message.paged:
                self._load(index)
                message = log[index]
            cursor += 1
            self.cursors[consumer] = cursor
            channel.deliver(consumer, Entry(message, cursor))

    def _load(self, index: int) -> None:
        """Read back the bodies of the stand-ins from ``index`` on (after a restart)."""
        log = self.log
        batch = [i for i in range(index, min(len(log), index + _LOAD_BATCH)) if log[i].paged]
        loaded = self._store.load(self.vhost.name, self.name, [log[i] for i in batch])
        for i, message in zip(batch, loaded, strict=True):
            log[i] = message
            self.loaded += 1
            self.loaded_bytes += message.size

    def held_in_memory(self) -> tuple[int, int]:
        """The log's messages with their bodies in memory (the memory alarm counts them:
        a stream keeps its messages after they were read)."""
        return self.loaded, self.loaded_bytes

    # -- settlement: acks give credit; the rest is refused --------------------------------

    def ack(self, entry: Entry) -> None:
        self.acked += 1

    def requeue(self, entries: Iterable[Entry]) -> None:
        raise AMQPNotImplemented(
            f"NOT_IMPLEMENTED - {self._what} does not support "
            "requeueing or rejecting messages"
        )

    def release(self, entries: Iterable[Entry]) -> None:
        self.drain()

    def reject(self, entry: Entry, requeue: bool) -> None:
        self.requeue((entry,))

    def get(self) -> Entry | None:
        raise AMQPNotImplemented(
            f"NOT_IMPLEMENTED - basic.get is not supported by "
            f"{self._what}"
        )

    def purge(self) -> int:
        raise AMQPNotImplemented(
            f"NOT_IMPLEMENTED - {self._what} does not support "
            "purge"
        )

    def destroy(self) -> int:
        if self._persist and self.log:
            self._store.queue_purged(self.vhost.name, self.name, self.log)
        self.log.clear()
        self.times.clear()
        self.cursors.clear()
        self.loaded = self.loaded_bytes = 0
        return super().destroy()


class _Behind:
    """A stream's stand-in for the ready list: never counts a message (queue.declare-ok
    says 0, as RabbitMQ), but is true while a consumer has messages to read, so that an
    ack makes the channel call :meth:`StreamQueue.drain`."""

    __slots__ = ("stream",)

    def __init__(self, stream: StreamQueue) -> None:
        self.stream = stream

    def __bool__(self) -> bool:
        end = self.stream.end
        return any(cursor < end for cursor in self.stream.cursors.values())

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Entry]:
        return iter(())

    def __getitem__(self, index: int) -> Entry:
        raise IndexError(index)

    def append(self, entry: Entry) -> None:
        raise TypeError("a stream has no ready list")

    def popleft(self) -> Entry:
        raise IndexError("a stream has no ready list")

    def clear(self) -> None:
        pass

    def put_back(self, back: list[Entry]) -> None:
        raise TypeError("a stream has no ready list")
