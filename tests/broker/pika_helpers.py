"""Helpers for the broker tests that drive it with pika: reading a queue (deliveries,
contents, the message count), a refused call's reply, waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker
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


def _bodies(channel: BlockingChannel, queue: str) -> list[bytes]:
    out: list[bytes] = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def _refused(
    channel: BlockingChannel, call: Callable[..., object], *args: object, **kwargs: object
) -> tuple[int, str]:
    with pytest.raises((ChannelClosedByBroker, ConnectionClosedByBroker)) as info:
        call(*args, **kwargs)
    return int(info.value.reply_code), str(info.value.reply_text)


def _wait_until(predicate: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
