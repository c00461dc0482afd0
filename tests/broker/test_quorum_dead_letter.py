"""Dead-lettering at least once from quorum queues, on the queue objects of an embedded
broker with a clock moved by hand: what RabbitMQ only shows after minutes (the retries)
or in its log. (What a client sees is compared with RabbitMQ in
tests/compat/sc_quorum.py, the restart in tests/durability/test_queue_types.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from kiltmq.broker import Broker
from kiltmq.broker.message import Message
from kiltmq.broker.queue import Queue, QuorumQueue
from kiltmq.broker.queue.discards import RETRY_SECONDS
from kiltmq.broker.vhost import VirtualHost
from kiltmq.testing import ControlledClock

pytestmark = pytest.mark.timeout(30)

AT_LEAST_ONCE = {
    "x-queue-type": "quorum", "x-overflow": "reject-publish",
    "x-dead-letter-exchange": "dlx", "x-dead-letter-strategy": "at-least-once",
}


def _quorum(vhost: VirtualHost, name: str, **arguments: Any) -> QuorumQueue:
    queue, _ = vhost.declare_queue(name, durable=True, arguments={**AT_LEAST_ONCE, **arguments})
    assert isinstance(queue, QuorumQueue)
    return queue


def _die(queue: Queue, body: bytes) -> None:
    """Publish ``body`` to ``queue``, take it and reject it without requeueing."""
    assert queue.publish(Message.build("", queue.name, body))
    entry = queue.get()
    assert entry is not None and entry.message.body == body
    queue.reject(entry, requeue=False)


def _bodies(queue: Queue) -> list[bytes]:
    return [entry.message.body for entry in queue.ready]


def test_a_dead_message_waits_for_a_route_and_is_tried_again() -> None:
    async def run() -> None:
        clock = ControlledClock(frozen=True)
        async with Broker(port=0, clock=clock) as broker:
            vhost = broker.vhosts["/"]
            dlx = vhost.declare_exchange("dlx", "fanout")
            source = _quorum(vhost, "source")
            _die(source, b"early")
            assert (len(source.discards), source.discards.bytes) == (1, 5)
            assert source.held_in_memory() == (1, 5)
            assert vhost.dead_lettered == {("rejected", True): 1}
            dlq, _ = vhost.declare_queue("dlq")
            vhost.bind(dlx, dlq, "")
            # a message dying now goes at once; the one waiting goes at the next try
            _die(source, b"late")
            assert _bodies(dlq) == [b"late"]
            assert len(source.discards) == 1
            clock.advance(RETRY_SECONDS - 1)
            assert len(source.discards) == 1
            clock.advance(1)
            assert _bodies(dlq) == [b"late", b"early"]
            assert (len(source.discards), source.discards.bytes) == (0, 0)
            assert source.held_in_memory() == (0, 0)
            headers = dlq.ready[1].message.properties.headers or {}
            assert headers["x-first-death-reason"] == "rejected"
            assert headers["x-first-death-queue"] == "source"
            # each death counted once, whatever the tries
            assert vhost.dead_lettered == {("rejected", True): 2}

    asyncio.run(run())


def test_a_queue_that_took_the_message_does_not_get_it_again() -> None:
    async def run() -> None:
        clock = ControlledClock(frozen=True)
        async with Broker(port=0, clock=clock) as broker:
            vhost = broker.vhosts["/"]
            dlx = vhost.declare_exchange("dlx", "fanout")
            source = _quorum(vhost, "source")
            open_queue, _ = vhost.declare_queue("open")
            full = _quorum(vhost, "full", **{"x-max-length": 1, "x-dead-letter-exchange": "x"})
            assert full.publish(Message.build("", "full", b"first"))
            assert full.publish(Message.build("", "full", b"second"))  # over: refusing
            for target in (open_queue, full):
                vhost.bind(dlx, target, "")
            _die(source, b"dead")
            assert _bodies(open_queue) == [b"dead"]
            assert len(source.discards) == 1  # "full" refused it
            clock.advance(RETRY_SECONDS)
            assert len(source.discards) == 1
            full.get()
            full.get()  # down to its low watermark: it takes messages again
            clock.advance(RETRY_SECONDS)
            assert len(source.discards) == 0
            assert _bodies(open_queue) == [b"dead"]
            assert _bodies(full) == [b"dead"]

    asyncio.run(run())


def test_dead_messages_waiting_count_towards_the_length_limit() -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            vhost = broker.vhosts["/"]
            source = _quorum(vhost, "source", **{"x-max-length-bytes": 10})
            _die(source, b"0123456789")  # no exchange "dlx": it waits
            assert source.publish(Message.build("", "source", b"a"))  # 10 bytes: not over
            assert not source.publish(Message.build("", "source", b"b"))  # 11: refused
            # deleting the queue drops what waits, timers included
            vhost.delete_queue(source)
            assert len(source.discards) == 0

    asyncio.run(run())


def test_at_least_once_falls_back_as_rabbitmq_says(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            vhost = broker.vhosts["/"]
            vhost.declare_exchange("dlx", "fanout")
            with caplog.at_level(logging.WARNING, "kiltmq.broker.queue"):
                drop_head = _quorum(vhost, "drop-head", **{"x-overflow": "drop-head"})
                no_exchange, _ = vhost.declare_queue("no-dlx", durable=True, arguments={
                    "x-queue-type": "quorum", "x-overflow": "reject-publish",
                    "x-dead-letter-strategy": "at-least-once",
                })
            assert drop_head.dead_letter_strategy == "at-most-once"
            assert isinstance(no_exchange, QuorumQueue)
            assert no_exchange.dead_letter_strategy == "at-most-once"
            assert [r.getMessage() for r in caplog.records] == [
                "Falling back to dead-letter-strategy at-most-once for queue 'drop-head' in "
                "vhost '/' because configured dead-letter-strategy at-least-once is "
                "incompatible with effective overflow strategy drop-head. To enable "
                "dead-letter-strategy at-least-once, set overflow strategy to "
                "reject-publish.",
                "Disabling dead-lettering for queue 'no-dlx' in vhost '/' despite "
                "configured dead-letter-strategy 'at-least-once' because "
                "dead-letter-exchange is not configured.",
            ]
            _die(drop_head, b"gone")  # at most once, and nothing routes it: dropped
            assert len(drop_head.discards) == 0

    asyncio.run(run())


def test_a_policy_that_ends_at_least_once_drops_the_waiting_messages() -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            vhost = broker.vhosts["/"]
            source = _quorum(vhost, "source")
            _die(source, b"waiting")
            assert len(source.discards) == 1
            source.apply_policy(None, None)  # unchanged: still at least once
            assert len(source.discards) == 1
            source.arguments["x-dead-letter-strategy"] = "at-most-once"
            source.apply_policy(None, None)
            assert source.dead_letter_strategy == "at-most-once"
            assert len(source.discards) == 0

    asyncio.run(run())
