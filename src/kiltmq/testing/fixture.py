"""A test's view of an embedded broker: inspect queues and connections, wait for acks,
inject messages, close clients' connections from the server side.

:class:`BrokerFixture` wraps a :class:`~kiltmq.broker.Broker` that runs its own event loop
in a thread (``start_in_thread``) and is bound to one virtual host. Clients under test
talk to it over real sockets with the real protocol; the fixture's methods are a
backdoor into the broker's state that no mock has. Each method hands its work to the
broker's loop and waits for the answer, so it may be called from any thread, and from
synchronous or asynchronous tests (the broker serves whichever event loop the test
uses). What comes back is a snapshot (:class:`QueueInfo`, :class:`ConnectionInfo`, ...),
never a live broker object.

Methods that wait have a synchronous form (``wait_acked``) and an ``async`` one
(``wait_acked_async``). In an ``async def`` test use the ``async`` form: the synchronous
one blocks the test's event loop, so a client running on that loop could not ack.

::

    with BrokerFixture.start() as amqp_broker:      # Broker(port=0), memory-only
        connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
        ...
        amqp_broker.wait_acked("jobs")
        assert amqp_broker.queue("jobs").message_count == 0

The pytest plugin (:mod:`kiltmq.testing.plugin`) hands these out as fixtures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import json
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from kiltmq.broker import Broker
from kiltmq.broker.admin import (
    Admin,
    BindingInfo,
    ConnectionInfo,
    ConsumerInfo,
    ExchangeInfo,
)
from kiltmq.broker.message import Message
from kiltmq.protocol.spec import BasicProperties

if TYPE_CHECKING:
    from kiltmq.broker.queue import Consumer, Entry, Queue
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.vhost import VirtualHost

__all__ = [
    "OWN_VHOST",
    "BindingInfo",
    "BrokerFixture",
    "ConnectionInfo",
    "ConsumerInfo",
    "ExchangeInfo",
    "MessageInfo",
    "QueueInfo",
]

T = TypeVar("T")

#: How often a wait looks at the broker's state (on the broker's loop), in seconds.
POLL_INTERVAL = 0.005
#: Extra time a caller waits for the broker's loop to answer beyond a wait's own timeout.
LOOP_GRACE = 5.0
#: Timeout of the calls that only look at or change the broker's state.
CALL_TIMEOUT = 10.0
#: Routing keys of direct reply-to replies (see kiltmq.broker.channel).
_REPLY_PREFIX = "amq.rabbitmq.reply-to."
_DIGITS = re.compile(r"[0-9]+")


class _Own(enum.Enum):
    VHOST = "the fixture's own virtual host"


#: Default of the ``vhost`` filter of the connection methods: the fixture's virtual host.
#: Pass ``vhost=None`` for every virtual host, or a name.
OWN_VHOST = _Own.VHOST
VhostFilter = str | None | _Own


# -- snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageInfo:
    """A message in a queue (ready or delivered and not yet acknowledged)."""

    body: bytes
    properties: BasicProperties
    exchange: str
    routing_key: str
    redelivered: bool

    @property
    def headers(self) -> dict[str, Any]:
        """The headers property (empty when absent)."""
        return dict(self.properties.headers or {})

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class QueueInfo:
    """A queue: its ready messages, unacknowledged deliveries and consumers."""

    name: str
    vhost: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any] = field(repr=False)
    #: Ready messages, in the order they will be delivered.
    messages: tuple[MessageInfo, ...] = field(repr=False)
    #: Messages delivered (or fetched with basic.get) and not yet acknowledged.
    unacked: tuple[MessageInfo, ...] = field(repr=False)
    consumers: tuple[ConsumerInfo, ...] = field(repr=False)
    #: Messages acknowledged since the queue was declared (deliveries to no-ack
    #: consumers count when delivered).
    acked: int = 0

    def __repr__(self) -> str:
        return (
            f"QueueInfo({self.name!r}, vhost={self.vhost!r}, ready={len(self.messages)}, "
            f"unacked={len(self.unacked)}, acked={self.acked}, "
            f"consumers={len(self.consumers)})"
        )

    @property
    def message_count(self) -> int:
        """Ready messages (what queue.declare reports as message_count)."""
        return len(self.messages)

    @property
    def unacked_count(self) -> int:
        return len(self.unacked)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def bodies(self) -> list[bytes]:
        """The bodies of the ready messages."""
        return [m.body for m in self.messages]


# -- the fixture -------------------------------------------------------------------------


class BrokerFixture:
    """An embedded broker running in its own thread, seen from one virtual host.

    ``broker`` must have been started with ``start_in_thread`` (:meth:`start` does both).
    ``vhost`` must exist (see :meth:`add_vhost`). The fixture stops the broker on
    :meth:`stop` only if it started it.
    """

    def __init__(self, broker: Broker, vhost: str = "/", *, owned: bool = False) -> None:
        self.broker = broker
        self.vhost = vhost
        self._owned = owned
        self._admin = Admin(broker)
        self._loop = cast(asyncio.AbstractEventLoop, broker.call_in_loop(asyncio.get_running_loop))

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, **options: Any) -> BrokerFixture:
        """Start ``Broker(port=0, **options)`` (memory-only unless ``data_dir``/``store``
        says otherwise) in its own thread; :meth:`stop` stops it."""
        options.setdefault("port", 0)
        broker = Broker(**options)
        broker.start_in_thread()
        try:
            return cls(broker, owned=True)
        except BaseException:
            broker.stop_thread()
            raise

    def stop(self) -> None:
        """Stop the broker if this fixture started it (clients get connection.close 320)."""
        if self._owned:
            self._owned = False
            self.broker.stop_thread()

    def __enter__(self) -> BrokerFixture:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_vhost(self, name: str, *, users: Iterable[str] | None = None) -> BrokerFixture:
        """Create virtual host ``name`` (ValueError if it exists), let ``users`` (default:
        every user; LookupError for one that does not exist) do everything in it, and
        return a fixture bound to it."""

        def add() -> None:
            if name in self.broker.vhosts:
                raise ValueError(f"vhost {name!r} exists")
            grant = list(users) if users is not None else list(self.broker.auth.users)
            self._admin.add_vhost(name, users=grant)

        self._call(add)
        return BrokerFixture(self.broker, name)

    def delete_vhost(self) -> bool:
        """Delete this fixture's virtual host (its clients get connection.close 320, its
        queues go); False if it was gone already."""
        return self._call(self.broker.delete_vhost, self.vhost)

    # -- addresses ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/<vhost>``, the vhost percent-encoded
        (nothing after the slash for the vhost ``/``)."""
        base = self.broker.url
        if self.vhost == "/":
            return base
        return base + quote(self.vhost, safe="")

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    # -- running on the broker's loop -----------------------------------------------------

    def _check_thread(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self._loop:
            raise RuntimeError("BrokerFixture methods cannot be called on the broker's own loop")

    def _call(self, function: Callable[..., T], *args: Any) -> T:
        self._check_thread()
        return cast(T, self.broker.call_in_loop(function, *args, timeout=CALL_TIMEOUT))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _wait(self, check: Callable[[], T | None], describe: Callable[[], str],
              timeout: float) -> T:
        self._check_thread()
        future = self._submit(self._poll(check, describe, timeout))
        try:
            return future.result(timeout + LOOP_GRACE)
        except concurrent.futures.TimeoutError:
            if not future.done():
                future.cancel()
                raise TimeoutError("the broker's event loop did not answer") from None
            raise

    async def _wait_async(
        self, check: Callable[[], T | None], describe: Callable[[], str], timeout: float
    ) -> T:
        self._check_thread()
        future = self._submit(self._poll(check, describe, timeout))
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout + LOOP_GRACE)

    @staticmethod
    async def _poll(
        check: Callable[[], T | None], describe: Callable[[], str], timeout: float
    ) -> T:
        """On the broker's loop: call ``check`` until it returns something other than
        None, for at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            if loop.time() >= deadline:
                raise TimeoutError(f"{describe()} after {timeout:g} s")
            await asyncio.sleep(POLL_INTERVAL)

    # -- inspection (these run on the broker's loop) ------------------------------------

    def _vhost(self) -> VirtualHost:
        vhost = self.broker.vhosts.get(self.vhost)
        if vhost is None:
            raise LookupError(f"no vhost '{self.vhost}'")
        return vhost

    def _find_queue(self, name: str) -> Queue | None:
        vhost = self.broker.vhosts.get(self.vhost)
        return vhost.queues.get(name) if vhost is not None else None

    def _unacked_entries(self, queue: Queue) -> list[Entry]:
        return self._admin.unacked_entries(queue)

    def _message_info(self, queue: Queue, entry: Entry) -> MessageInfo:
        message = entry.message
        if message.paged:  # paged out to the store (durable queues)
            (message,) = self.broker.store.load(queue.vhost.name, queue.name, [message])
        try:
            properties = message.properties
        except (ValueError, IndexError):
            properties = BasicProperties()
        return MessageInfo(
            body=message.body,
            properties=properties,
            exchange=message.exchange,
            routing_key=message.routing_key,
            redelivered=entry.redelivered,
        )

    def _queue_info(self, queue: Queue) -> QueueInfo:
        return QueueInfo(
            name=queue.name,
            vhost=queue.vhost.name,
            durable=queue.durable,
            exclusive=queue.exclusive,
            auto_delete=queue.auto_delete,
            arguments=dict(queue.arguments),
            messages=tuple(self._message_info(queue, e) for e in queue.ready),
            unacked=tuple(
                self._message_info(queue, e)
                for e in sorted(self._unacked_entries(queue), key=lambda e: e.seq)
            ),
            consumers=tuple(self._consumer_info(c) for c in queue.consumers),
            acked=queue.acked,
        )

    def _connection_info(self, conn: ServerConnection) -> ConnectionInfo:
        return self._admin.connection_info(conn)

    def _consumer_info(self, consumer: Consumer) -> ConsumerInfo:
        return self._admin.consumer_info(consumer)

    def _matching(
        self, name: str | None, user: str | None, vhost: VhostFilter
    ) -> list[ServerConnection]:
        if vhost is OWN_VHOST:
            vhost = self.vhost
        assert not isinstance(vhost, _Own)
        return self._admin.open_connections(name=name, user=user, vhost=vhost)

    # -- inspection -----------------------------------------------------------------------

    def queue(self, name: str) -> QueueInfo:
        """A snapshot of queue ``name`` in this fixture's vhost (LookupError if there is
        no such queue)."""

        def snapshot() -> QueueInfo:
            queue = self._vhost().queues.get(name)
            if queue is None:
                raise LookupError(f"no queue '{name}' in vhost '{self.vhost}'")
            return self._queue_info(queue)

        return self._call(snapshot)

    def has_queue(self, name: str) -> bool:
        return self._call(lambda: self._find_queue(name) is not None)

    def queue_names(self) -> list[str]:
        """The names of the queues in this fixture's vhost, sorted."""
        return self._call(lambda: sorted(self._vhost().queues))

    def exchange(self, name: str) -> ExchangeInfo:
        """Exchange ``name`` with its bindings (LookupError if there is no such exchange;
        ``""`` is the default exchange, whose implicit bindings are not listed)."""

        def snapshot() -> ExchangeInfo:
            exchange = self._vhost().exchanges.get(name)
            if exchange is None:
                raise LookupError(f"no exchange '{name}' in vhost '{self.vhost}'")
            return self._admin.exchange_info(exchange)

        return self._call(snapshot)

    def exchange_names(self) -> list[str]:
        """The names of the exchanges in this fixture's vhost (``amq.*`` included, the
        default exchange ``""`` too), sorted."""
        return self._call(lambda: sorted(self._vhost().exchanges))

    def connections(
        self, name: str | None = None, *, user: str | None = None,
        vhost: VhostFilter = OWN_VHOST,
    ) -> list[ConnectionInfo]:
        """Open client connections: by default those of this fixture's vhost; ``name``
        (the client's ``connection_name``), ``user`` and ``vhost`` (None: any) filter."""
        return self._call(
            lambda: [self._connection_info(c) for c in self._matching(name, user, vhost)]
        )

    # -- waiting --------------------------------------------------------------------------

    def _describe_queue(self, name: str) -> str:
        queue = self._find_queue(name)
        if queue is None:
            return f"no queue '{name}' in vhost '{self.vhost}'"
        return (
            f"queue '{name}' in vhost '{self.vhost}' has {len(queue.ready)} ready, "
            f"{len(self._unacked_entries(queue))} unacknowledged and {queue.acked} "
            f"acknowledged messages and {len(queue.consumers)} consumers"
        )

    def _acked_check(self, name: str, count: int | None) -> Callable[[], QueueInfo | None]:
        def check() -> QueueInfo | None:
            queue = self._find_queue(name)
            if queue is None:
                return None
            if count is None:
                if not queue.acked or queue.ready or self._unacked_entries(queue):
                    return None
            elif queue.acked < count:
                return None
            return self._queue_info(queue)

        return check

    def wait_acked(
        self, queue: str, count: int | None = None, *, timeout: float = 5.0
    ) -> QueueInfo:
        """Wait until ``queue`` has acknowledged messages and none ready or unacknowledged
        (``count`` None), or until at least ``count`` of its messages were acknowledged
        since it was declared. Returns the queue's snapshot; TimeoutError after
        ``timeout`` seconds, saying what the queue holds."""
        return self._wait(
            self._acked_check(queue, count), lambda: self._describe_queue(queue), timeout
        )

    async def wait_acked_async(
        self, queue: str, count: int | None = None, *, timeout: float = 5.0
    ) -> QueueInfo:
        """:meth:`wait_acked` for ``async`` tests."""
        return await self._wait_async(
            self._acked_check(queue, count), lambda: self._describe_queue(queue), timeout
        )

    def _count_check(
        self, name: str, what: Callable[[Queue], int], count: int
    ) -> Callable[[], QueueInfo | None]:
        def check() -> QueueInfo | None:
            queue = self._find_queue(name)
            if queue is None or what(queue) < count:
                return None
            return self._queue_info(queue)

        return check

    def wait_messages(self, queue: str, count: int = 1, *, timeout: float = 5.0) -> QueueInfo:
        """Wait until ``queue`` exists and has at least ``count`` ready messages."""
        return self._wait(
            self._count_check(queue, lambda q: len(q.ready), count),
            lambda: self._describe_queue(queue),
            timeout,
        )

    async def wait_messages_async(
        self, queue: str, count: int = 1, *, timeout: float = 5.0
    ) -> QueueInfo:
        """:meth:`wait_messages` for ``async`` tests."""
        return await self._wait_async(
            self._count_check(queue, lambda q: len(q.ready), count),
            lambda: self._describe_queue(queue),
            timeout,
        )

    def wait_consumers(self, queue: str, count: int = 1, *, timeout: float = 5.0) -> QueueInfo:
        """Wait until ``queue`` exists and has at least ``count`` consumers (0: until
        it exists)."""
        return self._wait(
            self._count_check(queue, lambda q: len(q.consumers), count),
            lambda: self._describe_queue(queue),
            timeout,
        )

    async def wait_consumers_async(
        self, queue: str, count: int = 1, *, timeout: float = 5.0
    ) -> QueueInfo:
        """:meth:`wait_consumers` for ``async`` tests."""
        return await self._wait_async(
            self._count_check(queue, lambda q: len(q.consumers), count),
            lambda: self._describe_queue(queue),
            timeout,
        )

    def _connections_check(
        self, count: int, name: str | None, user: str | None, vhost: VhostFilter
    ) -> Callable[[], list[ConnectionInfo] | None]:
        def check() -> list[ConnectionInfo] | None:
            found = self._matching(name, user, vhost)
            if (count == 0 and found) or len(found) < count:
                return None
            return [self._connection_info(c) for c in found]

        return check

    def _describe_connections(
        self, count: int, name: str | None, user: str | None, vhost: VhostFilter
    ) -> Callable[[], str]:
        def describe() -> str:
            found = len(self._matching(name, user, vhost))
            wanted = "none" if count == 0 else f"at least {count}"
            return f"{found} matching connections, wanted {wanted}"

        return describe

    def wait_connections(
        self, count: int = 1, name: str | None = None, *, user: str | None = None,
        vhost: VhostFilter = OWN_VHOST, timeout: float = 5.0,
    ) -> list[ConnectionInfo]:
        """Wait until at least ``count`` open connections match the filters (as
        :meth:`connections`), or, with ``count=0``, until none does. Connections being
        closed do not count, so after :meth:`close_connections` this waits for clients
        to reconnect."""
        return self._wait(
            self._connections_check(count, name, user, vhost),
            self._describe_connections(count, name, user, vhost),
            timeout,
        )

    async def wait_connections_async(
        self, count: int = 1, name: str | None = None, *, user: str | None = None,
        vhost: VhostFilter = OWN_VHOST, timeout: float = 5.0,
    ) -> list[ConnectionInfo]:
        """:meth:`wait_connections` for ``async`` tests."""
        return await self._wait_async(
            self._connections_check(count, name, user, vhost),
            self._describe_connections(count, name, user, vhost),
            timeout,
        )

    # -- injecting messages -----------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: BasicProperties | Mapping[str, Any] | Any = None,
    ) -> list[str]:
        """Route a message as if a client had published it to ``exchange`` (``""``: the
        default exchange) in this fixture's vhost; consumers get it over the wire.

        ``body``: bytes, or text sent as UTF-8. ``properties``: a
        :class:`kiltmq.BasicProperties`, a mapping of its field names
        (``{"headers": {...}, "delivery_mode": 2}``), or an object with the same
        attribute names (``pika.BasicProperties``). Returns the names of the queues that
        took the message (empty: unroutable, dropped as a non-mandatory publish would
        be). LookupError if the exchange does not exist; ValueError for an expiration
        RabbitMQ would refuse.
        """
        props = _properties(properties)
        data = body.encode() if isinstance(body, str) else bytes(body)
        if props.expiration is not None and _DIGITS.fullmatch(props.expiration) is None:
            raise ValueError(f"invalid expiration {props.expiration!r}")

        def inject() -> list[str]:
            vhost = self._vhost()
            target = vhost.exchanges.get(exchange)
            if target is None:
                raise LookupError(f"no exchange '{exchange}' in vhost '{self.vhost}'")
            message = Message.build(exchange, routing_key, data, props)
            if not exchange and routing_key.startswith(_REPLY_PREFIX):
                reply = vhost.reply_targets.get(routing_key)
                if reply is None:
                    return []
                reply.publish(message)
                return [routing_key]
            return [q.name for q in vhost.route(target, message) if q.publish(message)]

        return self._call(inject)

    # -- closing connections ----------------------------------------------------------------

    def close_connections(
        self,
        name: str | None = None,
        *,
        user: str | None = None,
        vhost: VhostFilter = OWN_VHOST,
        reply_code: int = 320,
        reply_text: str = "CONNECTION_FORCED - closed by test",
    ) -> list[ConnectionInfo]:
        """Close client connections from the server side, as ``rabbitmqctl
        close_connection`` does: connection.close with ``reply_code`` and
        ``reply_text`` (given "NAME - " in front if it lacks it), the client's channels
        closed and their unacknowledged messages requeued; a client that does not answer
        with close-ok within 3 s is disconnected. Filters as :meth:`connections`.
        Returns the connections closed."""

        def close() -> list[ConnectionInfo]:
            return self._admin.close_connections(
                self._matching(name, user, vhost), reply_text, reply_code
            )

        return self._call(close)

    def drop_connections(
        self,
        name: str | None = None,
        *,
        user: str | None = None,
        vhost: VhostFilter = OWN_VHOST,
    ) -> list[ConnectionInfo]:
        """Drop client connections without a word (the TCP connection is reset), as a
        crashed broker or a network failure would. Filters as :meth:`connections`.
        Returns the connections dropped."""

        def drop() -> list[ConnectionInfo]:
            dropped = []
            for conn in self._matching(name, user, vhost):
                dropped.append(self._connection_info(conn))
                conn.abort()
            return dropped

        return self._call(drop)

    def __repr__(self) -> str:
        return f"BrokerFixture({self.url!r})"


def _properties(value: Any) -> BasicProperties:
    if value is None:
        return BasicProperties()
    if isinstance(value, BasicProperties):
        return value
    if isinstance(value, Mapping):
        return BasicProperties(**value)
    fields: dict[str, Any] = {}
    for name in BasicProperties.FIELDS:
        item = getattr(value, name, None)
        if item is not None:
            fields[name] = int(item) if name in ("delivery_mode", "priority") else item
    return BasicProperties(**fields)
