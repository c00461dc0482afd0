"""Stream retention by age, and the x-stream-offset forms, on a stream in an embedded
broker (what RabbitMQ also has is compared in tests/compat/sc_stream.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin, AdminError
from kiltmq.broker.message import Message
from kiltmq.broker.queue import StreamQueue
from kiltmq.broker.queue.stream import parse_age
from kiltmq.protocol.errors import PreconditionFailed

pytestmark = pytest.mark.timeout(30)


def test_ages_as_rabbitmq_writes_them() -> None:
    assert [parse_age(t) for t in ("7D", "1h", "30m", "10s", "1Y", "2M")] == [
        7 * 86400, 3600, 1800, 10, 365 * 86400, 60 * 86400,
    ]
    assert [parse_age(t) for t in ("", "1", "h", "1 h", "1d", "-1h")] == [None] * 6


def test_old_segments_go_when_a_new_one_starts() -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            queue, _ = broker.vhosts["/"].declare_queue("s", durable=True, arguments={
                "x-queue-type": "stream", "x-max-age": "1h",
                "x-stream-max-segment-size-bytes": 4,
            })
            assert isinstance(queue, StreamQueue)
            for i in range(4):  # 2-byte bodies: segments [0 1] [2 3]
                queue.publish(Message.build("", "s", b"m%d" % i))
            assert (queue.first, queue.end) == (0, 4)
            # the first segment's newest message arrived two hours ago
            queue.segments[0].newest -= 7200
            queue.times[0] -= 7200
            queue.times[1] -= 7200
            assert queue.start_of("1h") == 2
            assert queue.start_of(datetime.fromtimestamp(int(queue.times[2]), UTC)) == 2
            queue.publish(Message.build("", "s", b"m4"))  # a third segment starts
            assert (queue.first, queue.end) == (2, 5)
            assert [m.body for m in queue.log] == [b"m2", b"m3", b"m4"]
            assert [queue.start_of(s) for s in ("first", "last", "next", 0, 99, -5)] == [
                2, 4, 5, 2, 5, 2,
            ]
            with pytest.raises(PreconditionFailed) as refused:
                queue.start_of(1.5, "queue 's' in vhost '/'")
            assert refused.value.reply_text == (
                "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 's' in "
                "vhost '/': {invalid_stream_offset_arg,{double,1.5}}"
            )

    asyncio.run(run())


def test_a_stream_is_not_purged_from_the_admin_interface() -> None:
    async def run() -> None:
        async with Broker(port=0) as broker:
            broker.vhosts["/"].declare_queue(
                "s", durable=True, arguments={"x-queue-type": "stream"}
            )
            with pytest.raises(AdminError) as refused:
                Admin(broker).purge_queue("/", "s")
            assert str(refused.value) == "queue 's' in vhost '/' does not support purge"

    asyncio.run(run())
