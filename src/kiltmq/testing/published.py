"""What was published in a fixture's vhost, and the assertions that read like the
domain: ``assert_published(exchange=..., routing_key=..., body=..., headers=...)``,
``wait_for_consumers(queue, n)``, ``topology()``.

The log is kept by putting a recording ``route`` over the vhost's (an instance
attribute): every message routed in the vhost is logged with the queues it went to,
whether a client published it, the test injected it, or a queue dead-lettered it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiltmq.broker.admin import Admin
from kiltmq.protocol.spec import BasicProperties
from kiltmq.testing.topology import Topology

if TYPE_CHECKING:
    from kiltmq.broker import Broker
    from kiltmq.broker.exchange import Exchange
    from kiltmq.broker.message import Message
    from kiltmq.broker.queue import Queue
    from kiltmq.broker.vhost import VirtualHost
    from kiltmq.testing.broker_loop import BrokerLoop
    from kiltmq.testing.snapshots import QueueInfo

__all__ = ["FixtureAssertions", "PublishLog", "PublishedInfo"]

_ANY: Any = object()


@dataclass(frozen=True)
class PublishedInfo:
    """A message routed in the vhost: as published, and the queues it went to."""

    exchange: str
    routing_key: str
    body: bytes
    properties: BasicProperties
    queues: tuple[str, ...]

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    def json(self) -> Any:
        return json.loads(self.body)

    def matches(self, exchange: Any, routing_key: Any, body: Any, headers: Any) -> bool:
        """Whether each criterion given matches (``body``: bytes, text or a JSON value;
        ``headers``: these headers among the message's)."""
        if exchange is not _ANY and self.exchange != exchange:
            return False
        if routing_key is not _ANY and self.routing_key != routing_key:
            return False
        if body is not _ANY and not _body_matches(self.body, body):
            return False
        if headers is not _ANY:
            mine = self.headers
            if any(mine.get(k, _ANY) != v for k, v in dict(headers).items()):
                return False
        return True


def _body_matches(actual: bytes, expected: Any) -> bool:
    if isinstance(expected, bytes):
        return actual == expected
    if isinstance(expected, str):
        return actual == expected.encode()
    try:
        return bool(json.loads(actual) == expected)
    except ValueError:
        return False


class PublishLog:
    """The messages routed in one vhost while started (loop only)."""

    def __init__(self, vhost: VirtualHost) -> None:
        self.vhost = vhost
        self.messages: list[tuple[Message, tuple[str, ...]]] = []
        original = vhost.route

        def route(exchange: Exchange, message: Message) -> tuple[Queue, ...]:
            queues = original(exchange, message)
            self.messages.append((message, tuple(q.name for q in queues)))
            return queues

        target: Any = vhost
        target.route = route

    def stop(self) -> None:
        self.vhost.__dict__.pop("route", None)

    def infos(self) -> list[PublishedInfo]:
        return [
            PublishedInfo(m.exchange, m.routing_key, bytes(m.body), m.properties, queues)
            for m, queues in self.messages
        ]


class FixtureAssertions:
    """The assertion methods of :class:`~kiltmq.testing.BrokerFixture`."""

    broker: Broker
    vhost: str
    _loop: BrokerLoop
    _publish_log: PublishLog | None = None

    def wait_consumers(self, queue: str, count: int = 1, *, timeout: float = 5.0) -> QueueInfo:
        raise NotImplementedError

    async def wait_consumers_async(
        self, queue: str, count: int = 1, *, timeout: float = 5.0
    ) -> QueueInfo:
        raise NotImplementedError

    def record_published(self) -> None:
        """Log every message routed in this fixture's vhost from now on (the plugin does
        it for each test)."""
        def start() -> None:
            if self._publish_log is None:
                self._publish_log = PublishLog(self.broker.vhosts[self.vhost])

        self._loop.call(start)

    def stop_recording_published(self) -> None:
        def stop() -> None:
            if self._publish_log is not None:
                self._publish_log.stop()
                self._publish_log = None

        self._loop.call(stop)

    def _published(self) -> list[PublishedInfo]:
        if self._publish_log is None:
            raise RuntimeError("published messages are not recorded: record_published()")
        return self._publish_log.infos()

    def published(self) -> list[PublishedInfo]:
        """Every message routed in the vhost so far, in order."""
        return self._loop.call(self._published)

    def assert_published(
        self, exchange: Any = _ANY, routing_key: Any = _ANY, body: Any = _ANY,
        headers: Mapping[str, Any] | Any = _ANY, *, count: int = 1, timeout: float = 5.0,
    ) -> list[PublishedInfo]:
        """Wait until at least ``count`` messages matching every criterion given were
        published (a publish is on its way when the client returns); returns them.
        AssertionError listing what was published if none comes within ``timeout``."""
        def check() -> list[PublishedInfo] | None:
            found = [
                p for p in self._published() if p.matches(exchange, routing_key, body, headers)
            ]
            return found if len(found) >= count else None

        try:
            return self._loop.wait(check, lambda: "", timeout)
        except TimeoutError:
            raise AssertionError(self._not_published(
                exchange, routing_key, body, headers, count
            )) from None

    async def assert_published_async(
        self, exchange: Any = _ANY, routing_key: Any = _ANY, body: Any = _ANY,
        headers: Mapping[str, Any] | Any = _ANY, *, count: int = 1, timeout: float = 5.0,
    ) -> list[PublishedInfo]:
        """:meth:`assert_published` for ``async`` tests."""
        def check() -> list[PublishedInfo] | None:
            found = [
                p for p in self._published() if p.matches(exchange, routing_key, body, headers)
            ]
            return found if len(found) >= count else None

        try:
            return await self._loop.wait_async(check, lambda: "", timeout)
        except TimeoutError:
            raise AssertionError(self._not_published(
                exchange, routing_key, body, headers, count
            )) from None

    def _not_published(
        self, exchange: Any, routing_key: Any, body: Any, headers: Any, count: int
    ) -> str:
        wanted = ", ".join(
            f"{k}={v!r}" for k, v in (
                ("exchange", exchange), ("routing_key", routing_key), ("body", body),
                ("headers", headers),
            ) if v is not _ANY
        )
        seen = self.published()
        lines = [f"expected {count} published message(s) with {wanted}; {len(seen)} published:"]
        lines += [
            f"  exchange={p.exchange!r} routing_key={p.routing_key!r} body={p.body[:80]!r} "
            f"headers={p.headers!r} -> {list(p.queues)}"
            for p in seen
        ]
        return "\n".join(lines)

    def wait_for_consumers(self, queue: str, count: int = 1, *, timeout: float = 5.0) -> QueueInfo:
        """Wait until ``queue`` has at least ``count`` consumers (:meth:`wait_consumers`)."""
        return self.wait_consumers(queue, count, timeout=timeout)

    async def wait_for_consumers_async(
        self, queue: str, count: int = 1, *, timeout: float = 5.0
    ) -> QueueInfo:
        return await self.wait_consumers_async(queue, count, timeout=timeout)

    def topology(self) -> Topology:
        """This vhost's queues, exchanges, bindings and policies, comparable with
        ``Topology.from_definitions(exported_from_rabbitmq)``."""
        admin = Admin(self.broker)
        return Topology.from_definitions(
            self._loop.call(lambda: admin.export_definitions(self.vhost))
        )
