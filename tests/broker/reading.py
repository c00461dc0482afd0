"""Reading a queue with pika: a number of deliveries, nothing more, the message count."""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic


def _deliveries(
    channel: BlockingChannel, queue: str, count: int, *, ack: bool = False
) -> list[tuple[Basic.Deliver, bytes]]:
    """Consume ``count`` messages from ``queue`` (acking them if ``ack``)."""
    got: list[tuple[Basic.Deliver, bytes]] = []
    for method, _props, body in channel.consume(queue, inactivity_timeout=10):
        assert method is not None, f"timed out after {len(got)} messages"
        got.append((method, body))
        if ack:
            channel.basic_ack(method.delivery_tag)
        if len(got) == count:
            break
    return got


def _no_more(channel: BlockingChannel, queue: str, seconds: float = 0.3) -> None:
    """Nothing else arrives from ``queue`` within a short while."""
    for method, _props, _body in channel.consume(queue, inactivity_timeout=seconds):
        assert method is None, "an unexpected delivery"
        break


def _count(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)
