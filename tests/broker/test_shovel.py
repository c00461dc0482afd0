"""The broker's shovel between two of its queues: batches on the loop, running until the
count is reached, stopped or terminated without losing a message, and going on after a
restart with what it had left."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pika

from kiltmq.broker import Broker
from kiltmq.broker.shovel import BATCH, Shovels

TOTAL = BATCH * 2 + 7
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def _fill(broker: Broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    channel = conn.channel()
    channel.queue_declare("from")
    channel.queue_declare("to")
    for i in range(TOTAL):
        channel.basic_publish("", "from", str(i).encode())
    assert channel.queue_declare("from", passive=True).method.message_count == TOTAL
    conn.close()


def test_a_shovel_moves_a_batch_per_loop_turn_and_stops_when_told() -> None:
    shovels = Shovels()
    with Broker(port=0) as broker:
        _fill(broker)
        vhost = broker.vhosts["/"]
        source, destination = vhost.queues["from"], vhost.queues["to"]

        def start_and_stop() -> tuple[Any, ...]:
            shovel = shovels.start("/", "mv", source, destination, None)
            running = (shovel.state, shovel.moved, shovels.all() == [shovel])
            assert shovels.stop("/", "mv")
            return running, shovel.state, shovel.reason, shovels.all()

        running, state, reason, left = broker.call_in_loop(start_and_stop)
        assert running == ("running", BATCH, True)
        assert (state, reason, left) == ("terminated", "stopped", [])

        def counts() -> tuple[int, int]:
            return source.message_count, destination.message_count

        assert broker.call_in_loop(counts) == (TOTAL - BATCH, BATCH)

        def order() -> list[bytes]:
            return [e.message.body for e in destination.ready][:3]

        assert broker.call_in_loop(order) == [b"0", b"1", b"2"]


def test_a_deleted_destination_terminates_the_shovel() -> None:
    shovels = Shovels()
    with Broker(port=0) as broker:
        _fill(broker)
        vhost = broker.vhosts["/"]
        source, destination = vhost.queues["from"], vhost.queues["to"]

        def start_then_delete() -> None:
            shovels.start("/", "mv", source, destination, None)
            vhost.delete_queue(destination)

        broker.call_in_loop(start_then_delete)

        def after() -> tuple[Any, ...]:
            [shovel] = shovels.all()
            return shovel.state, shovel.reason, source.message_count

        assert broker.call_in_loop(after) == (
            "terminated", "queue 'to' was deleted", TOTAL - BATCH,
        )


def test_a_shovel_stopped_with_the_broker_moves_what_it_had_left_after_a_restart(
    tmp_path: Path,
) -> None:
    with Broker(port=0, data_dir=tmp_path) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = conn.channel()
        for queue in ("from", "to"):
            channel.queue_declare(queue, durable=True)
        for i in range(TOTAL + 5):
            channel.basic_publish("", "from", str(i).encode(), PERSISTENT)
        conn.close()
        vhost = broker.vhosts["/"]

        def first_batch_then_stop() -> int:
            source, destination = vhost.queues["from"], vhost.queues["to"]
            shovel = broker.shovels.start(
                "/", "mv", source, destination, TOTAL, {"src-uri": "amqp:///",
                "src-queue": "from", "dest-uri": "amqp:///", "dest-queue": "to",
                "src-delete-after": TOTAL},
            )
            broker.shovels.pause()  # as the broker does when it stops
            return shovel.remaining

        assert broker.call_in_loop(first_batch_then_stop) == TOTAL - BATCH
    with Broker(port=0, data_dir=tmp_path) as broker:
        vhost = broker.vhosts["/"]

        def state() -> tuple[int, int, list[Any]]:
            return (vhost.queues["from"].message_count, vhost.queues["to"].message_count,
                    broker.shovels.all())

        for _ in range(10_000):
            counts = broker.call_in_loop(state)
            if not counts[2]:
                break
        assert counts == (5, TOTAL, [])
