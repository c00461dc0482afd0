"""Dead-lettering: the message a queue republishes for one that died in it (rejected,
expired, or dropped by a length limit), with RabbitMQ's ``x-death`` headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kiltmq.broker.message import Message
from kiltmq.protocol.spec import BasicProperties

__all__ = ["dead_lettered"]


def dead_lettered(
    message: Message, queue: str, reason: str, exchange: str, routing_key: str | None,
    now: float,
) -> tuple[Message, frozenset[str]] | None:
    """``message``, which died in ``queue`` for ``reason``, as it is republished to the
    dead-letter ``exchange`` (with ``routing_key``, else its own) at ``now`` (seconds
    since the epoch), and the names of the queues it must not enter: RabbitMQ drops a
    message that would cycle back into a queue it died in automatically (with no
    rejection along the way). None if its properties do not decode."""
    try:
        props = message.properties
    except (ValueError, IndexError):
        return None
    headers: dict[str, Any] = dict(props.headers or {})
    deaths: list[Any] = list(headers.get("x-death") or [])
    previous = None
    for i, old in enumerate(deaths):
        if isinstance(old, dict) and old.get("queue") == queue and old.get("reason") == reason:
            previous = deaths.pop(i)
            break
    death: dict[str, Any] = {
        "count": (previous.get("count", 1) + 1) if previous else 1,
        "reason": reason,
        "queue": queue,
        "time": datetime.fromtimestamp(int(now), UTC),
        "exchange": message.exchange,
        "routing-keys": [message.routing_key],
    }
    if props.expiration is not None:
        death["original-expiration"] = props.expiration
    deaths.insert(0, death)
    headers["x-death"] = deaths
    if "x-first-death-reason" not in headers:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue
        headers["x-first-death-exchange"] = message.exchange
    new_props = BasicProperties(**{f: getattr(props, f) for f in BasicProperties.FIELDS})
    new_props.headers = headers
    new_props.expiration = None
    dead = Message.build(exchange, routing_key or message.routing_key, message.body, new_props)
    if any(isinstance(d, dict) and d.get("reason") == "rejected" for d in deaths):
        return dead, frozenset()
    died_in = (d.get("queue") for d in deaths if isinstance(d, dict))
    return dead, frozenset(name for name in died_in if isinstance(name, str))
