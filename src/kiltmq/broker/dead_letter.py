"""Dead-lettering: the message a queue republishes for one that died in it (rejected,
expired, or dropped by a length limit), with RabbitMQ's ``x-death`` headers, and the
virtual host's part (:class:`VhostDeadLetters`): counting it and republishing it to
the queue's dead-letter exchange."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kiltmq.broker.clock import Clock
from kiltmq.broker.exchange import Exchange
from kiltmq.broker.message import Message, kept_headers
from kiltmq.broker.queue import Queue
from kiltmq.protocol.codec import Long
from kiltmq.protocol.spec import BasicProperties

__all__ = ["VhostDeadLetters", "dead_lettered"]


def _long_count(death: Any) -> Any:
    if isinstance(death, dict) and type(death.get("count")) is int:
        return {**death, "count": Long(death["count"])}
    return death


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
    headers: dict[str, Any] = kept_headers(message.raw_properties)
    # the counts of earlier deaths go back as RabbitMQ wrote them: 64-bit
    deaths: list[Any] = [_long_count(d) for d in (props.headers or {}).get("x-death") or []]
    previous = None
    for i, old in enumerate(deaths):
        if isinstance(old, dict) and old.get("queue") == queue and old.get("reason") == reason:
            previous = deaths.pop(i)
            break
    death: dict[str, Any] = {
        "count": Long(previous.get("count", 1) + 1) if previous else Long(1),
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
    # built from the encoded properties: the kept headers decode when they are read
    dead = Message(exchange, routing_key or message.routing_key, new_props.encode(), message.body)
    if any(isinstance(d, dict) and d.get("reason") == "rejected" for d in deaths):
        return dead, frozenset()
    died_in = (d.get("queue") for d in deaths if isinstance(d, dict))
    return dead, frozenset(name for name in died_in if isinstance(name, str))


class VhostDeadLetters:
    """The dead-lettering part of :class:`~kiltmq.broker.vhost.VirtualHost` (a mixin: the
    attributes below are the virtual host's)."""

    clock: Clock
    exchanges: dict[str, Exchange]
    #: Messages that died here, by (reason, whether the queue has a dead-letter exchange).
    dead_lettered: dict[tuple[str, bool], int]

    if TYPE_CHECKING:

        def route(self, exchange: Exchange, message: Message) -> tuple[Queue, ...]: ...


    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish a message that died in ``queue`` (rejected, expired, maxlen) to the
        queue's dead-letter exchange, with RabbitMQ's x-death headers; counted by reason
        and whether the queue has a dead-letter exchange."""
        self.count_dead_letter(queue, reason)
        if queue.dead_letter_exchange is not None:
            self.forward_dead_letter(queue, message, reason, set())

    def count_dead_letter(self, queue: Queue, reason: str) -> None:
        """Count a message that died in ``queue`` for ``reason``."""
        key = (reason, queue.dead_letter_exchange is not None)
        self.dead_lettered[key] = self.dead_lettered.get(key, 0) + 1

    def forward_dead_letter(
        self, queue: Queue, message: Message, reason: str, held: set[str]
    ) -> bool:
        """Republish ``message``, dead in ``queue``, to the queue's dead-letter exchange,
        except to the queues named in ``held`` (the names of those that take it are
        added). True once every queue it routes to holds it; False while the exchange
        does not exist, nothing routes it, or a queue refused it."""
        dlx_name = queue.dead_letter_exchange
        exchange = None if dlx_name is None else self.exchanges.get(dlx_name)
        if dlx_name is None or exchange is None:
            return False
        dead = dead_lettered(
            message, queue.name, reason, dlx_name, queue.dead_letter_routing_key,
            self.clock.wall(),
        )
        if dead is None:
            return True  # its properties do not decode: it cannot go anywhere
        republished, avoid = dead
        targets = [
            target for target in self.route(exchange, republished)
            if target.name not in avoid and target.name not in held
        ]
        if not targets:
            return bool(held)
        refused = False
        for target in targets:
            if target.publish(republished):
                held.add(target.name)
            else:
                refused = True
        return not refused
