"""The queue on its own (no connections): requeue order and cost, and which consumer gets
a message (single active consumer, consumer priorities, round-robin)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from kiltmq.broker.message import Message
from kiltmq.broker.queue import Consumer, Entry, Queue
from kiltmq.broker.vhost import VirtualHost
from kiltmq.protocol.spec import BasicProperties

from .conftest import Connect

pytestmark = pytest.mark.timeout(60)


class Channel:
    """A consumer channel that records deliveries; ``room`` caps unacked ones per
    consumer (None: no cap)."""

    def __init__(self, room: int | None = None) -> None:
        self.room = room
        self.delivered: list[tuple[str, bytes]] = []
        self.entries: list[Entry] = []

    def can_deliver(self, consumer: Consumer) -> bool:
        return self.room is None or consumer.unacked < self.room

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        self.delivered.append((consumer.tag, entry.message.body))
        self.entries.append(entry)
        if consumer.no_ack:
            consumer.queue.ack(entry)
        else:
            consumer.unacked += 1

    def consumer_cancelled(self, consumer: Consumer) -> None:
        pass


def _queue(**arguments: object) -> Queue:
    return Queue(VirtualHost("/"), "q", arguments=dict(arguments))


def _message(body: str, priority: int | None = None) -> Message:
    props = BasicProperties(priority=priority) if priority is not None else None
    return Message.build("", "q", body.encode(), props)


def _consume(queue: Queue, channel: Channel, tag: str, priority: int = 0) -> Consumer:
    consumer = Consumer(tag, queue, channel, no_ack=channel.room is None, priority=priority)
    queue.add_consumer(consumer)
    return consumer


def _bodies(queue: Queue) -> list[bytes]:
    return [e.message.body for e in queue.ready]


# -- requeue -----------------------------------------------------------------------------


def test_requeue_puts_entries_back_in_publication_order() -> None:
    queue = _queue()
    for i in range(6):
        queue.publish(_message(f"m{i}"))
    taken = [queue.get() for _ in range(4)]
    assert all(taken)
    a, b, c, d = (e for e in taken if e is not None)
    queue.requeue([d, b])
    queue.requeue([c])
    queue.requeue([a])
    assert _bodies(queue) == [b"m0", b"m1", b"m2", b"m3", b"m4", b"m5"]
    assert [e.redelivered for e in queue.ready] == [True] * 4 + [False] * 2
    assert queue.ready_bytes == 12


def test_requeue_in_a_priority_queue_keeps_each_level_in_order() -> None:
    queue = _queue(**{"x-max-priority": 5})
    for body, priority in (("a1", 1), ("b5", 5), ("c1", 1), ("d5", 5), ("e0", 0)):
        queue.publish(_message(body, priority))
    taken = [queue.get() for _ in range(4)]  # b5 d5 a1 c1
    queue.requeue([e for e in (taken[3], taken[1]) if e is not None])
    queue.requeue([e for e in (taken[2], taken[0]) if e is not None])
    assert _bodies(queue) == [b"b5", b"d5", b"a1", b"c1", b"e0"]


class CountingEntry(Entry):
    """An entry that counts how often its sequence number is read."""

    reads = 0

    @property
    def seq(self) -> int:
        CountingEntry.reads += 1
        return self._counted_seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._counted_seq = value


def test_requeue_touches_only_the_head_of_a_long_queue() -> None:
    queue = _queue()
    size = 20_000
    for _ in range(size):
        queue.restore(CountingEntry(_message("x"), 0))
    taken = [queue.get() for _ in range(3)]
    first, second, third = (e for e in taken if e is not None)
    CountingEntry.reads = 0
    # each one goes behind the ones put back before it: not at the very head
    queue.requeue([first])
    queue.requeue([second])
    queue.requeue([third])
    assert CountingEntry.reads < 40, f"{CountingEntry.reads} reads for 3 requeues"
    assert [e.seq for e in list(queue.ready)[:4]] == [1, 2, 3, 4]
    assert len(queue.ready) == size


# -- single active consumer --------------------------------------------------------------


def test_single_active_consumer_keeps_the_first_despite_higher_priorities() -> None:
    queue = _queue(**{"x-single-active-consumer": True})
    channel = Channel(room=1)
    first = _consume(queue, channel, "first")
    _consume(queue, channel, "high", priority=10)
    queue.publish(_message("m0"))
    queue.publish(_message("m1"))
    # "first" is at its prefetch: m1 waits for it rather than going to "high"
    assert channel.delivered == [("first", b"m0")]
    assert _bodies(queue) == [b"m1"]
    first.unacked = 0
    queue.drain()
    assert channel.delivered == [("first", b"m0"), ("first", b"m1")]


def test_single_active_consumer_hands_over_to_highest_priority_then_earliest() -> None:
    queue = _queue(**{"x-single-active-consumer": True})
    channel = Channel()
    consumers = {
        tag: _consume(queue, channel, tag, priority)
        for tag, priority in (("first", 0), ("low", 5), ("high", 10), ("high2", 10))
    }
    order = []
    for tag in ("first", "high", "high2", "low"):
        queue.publish(_message(tag))
        order.append(channel.delivered[-1][0])
        queue.remove_consumer(consumers[tag])
    assert order == ["first", "high", "high2", "low"]


def test_single_active_consumer_takes_over_the_backlog() -> None:
    queue = _queue(**{"x-single-active-consumer": True})
    channel = Channel(room=1)
    first = _consume(queue, channel, "first")
    _consume(queue, channel, "second", priority=3)
    for i in range(3):
        queue.publish(_message(f"m{i}"))
    queue.remove_consumer(first)
    assert channel.delivered == [("first", b"m0"), ("second", b"m1")]


# -- consumer priorities and round-robin ---------------------------------------------------


def test_consumer_priorities_serve_the_highest_group_round_robin() -> None:
    queue = _queue()
    channel = Channel(room=2)
    _consume(queue, channel, "low", priority=1)
    _consume(queue, channel, "high-a", priority=9)
    _consume(queue, channel, "high-b", priority=9)
    for i in range(6):
        queue.publish(_message(f"m{i}"))
    assert [tag for tag, _body in channel.delivered] == [
        "high-a", "high-b", "high-a", "high-b", "low", "low"
    ]


def test_round_robin_skips_consumers_without_room() -> None:
    queue = _queue()
    full, free = Channel(room=0), Channel()
    _consume(queue, free, "a")
    _consume(queue, full, "b")
    _consume(queue, free, "c")
    for i in range(4):
        queue.publish(_message(f"m{i}"))
    assert [tag for tag, _body in free.delivered] == ["a", "c", "a", "c"]
    assert not full.delivered


# -- over the wire -------------------------------------------------------------------------


def _wait_until(predicate: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_single_active_consumer_ignores_priority_of_later_consumers(connect: Connect) -> None:
    conn = connect()
    ch = conn.channel()
    ch.queue_declare("sacp", arguments={"x-single-active-consumer": True})
    got: list[tuple[str, bytes]] = []
    for tag, priority in (("first", 0), ("high", 10)):
        ch.basic_consume(
            "sacp",
            lambda _c, _m, _p, body, tag=tag: got.append((tag, body)),
            auto_ack=True,
            consumer_tag=tag,
            arguments={"x-priority": priority},
        )
    for i in range(3):
        ch.basic_publish("", "sacp", f"m{i}".encode())
    _wait_until(lambda: (conn.process_data_events(time_limit=0.05), len(got) == 3)[1])
    assert got == [("first", b"m0"), ("first", b"m1"), ("first", b"m2")]
    ch.basic_cancel("first")
    ch.basic_publish("", "sacp", b"m3")
    _wait_until(lambda: (conn.process_data_events(time_limit=0.05), len(got) == 4)[1])
    assert got[3] == ("high", b"m3")
