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

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin, ConnectionInfo, ExchangeInfo
from kiltmq.broker.message import Message
from kiltmq.protocol.spec import BasicProperties
from kiltmq.testing.broker_loop import BrokerLoop
from kiltmq.testing.clock import ControlledClock
from kiltmq.testing.clock_control import ClockControl
from kiltmq.testing.faults import Faults
from kiltmq.testing.fixture_frames import FixtureFrames
from kiltmq.testing.fixture_waits import OWN_VHOST, FixtureWaits, VhostFilter, _Own
from kiltmq.testing.properties import message_properties
from kiltmq.testing.published import FixtureAssertions, PublishLog
from kiltmq.testing.snapshots import QueueInfo, queue_info

if TYPE_CHECKING:
    from kiltmq.broker.queue import Entry, Queue
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.vhost import VirtualHost

__all__ = ["OWN_VHOST", "BrokerFixture"]

#: Routing keys of direct reply-to replies (see kiltmq.broker.channel).
_REPLY_PREFIX = "amq.rabbitmq.reply-to."
_DIGITS = re.compile(r"[0-9]+")


T = TypeVar("T")


class BrokerFixture(FixtureWaits, FixtureFrames, FixtureAssertions):
    """An embedded broker running in its own thread, seen from one virtual host.

    ``broker`` must have been started with ``start_in_thread`` (:meth:`start` does both).
    ``vhost`` must exist (see :meth:`add_vhost`). The fixture stops the broker on
    :meth:`stop` only if it started it.
    """

    def __init__(
        self, broker: Broker, vhost: str = "/", *, owned: bool = False,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.broker = broker
        self.vhost = vhost
        self._owned = owned
        self._options = dict(options or {})
        self._admin = Admin(broker)
        self._loop = BrokerLoop(broker)
        #: The broker's time (``advance``, ``freeze``, ``resume``): see docs/testing.md.
        self.clock = ClockControl(broker.clock, self._loop)
        #: Faults on demand (nacks, held confirms, refusals, closes, alarms).
        self.faults = Faults(self)

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, **options: Any) -> BrokerFixture:
        """Start ``Broker(port=0, **options)`` (memory-only unless ``data_dir``/``store``
        says otherwise) in its own thread; :meth:`stop` stops it. Its clock is a
        :class:`~kiltmq.testing.ControlledClock` (``clock="frozen"``: one that starts
        frozen)."""
        options.setdefault("port", 0)
        clock = options.get("clock")
        if clock is None or clock in ("running", "frozen"):
            options["clock"] = ControlledClock(frozen=clock == "frozen")
        broker = Broker(**options)
        broker.start_in_thread()
        try:
            return cls(broker, owned=True, options=options)
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

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def restart(self) -> None:
        """Restart the broker in place, as a RabbitMQ node restarts: clients get
        connection.close 320 (CONNECTION_FORCED, reason 'shutdown'), then a new broker
        with the same options, port and clock recovers the durable queues, exchanges,
        bindings and persistent messages from its data directory. Only for a broker of
        the fixture's own with a data directory (``kiltmq_broker(durable=True)``).

        What the test set is carried over to the new broker: faults not yet done (a
        refusal still refuses, held confirms are still held), alarms, the clock, the
        frame capture (with the frames recorded before) and the log of published
        messages."""
        if not self._owned:
            raise RuntimeError(
                "restart() needs a broker of the test's own: "
                "@pytest.mark.kiltmq_broker(durable=True)"
            )
        if self._options.get("data_dir") is None:
            raise RuntimeError(
                "a memory-only broker keeps nothing over a restart: give it a data "
                "directory (@pytest.mark.kiltmq_broker(durable=True))"
            )
        options = {**self._options, "port": self.broker.port}
        previous = self.broker
        previous.stop_thread()
        broker = Broker(**options)
        broker.start_in_thread()
        self.broker = broker
        self._admin = Admin(broker)
        self._loop = BrokerLoop(broker)
        self.clock = ClockControl(broker.clock, self._loop)
        # what the test set goes on: its faults, its alarms, its frame capture
        self.faults.carry_over(previous)
        self.carry_capture_over(previous)
        old = self._publish_log
        if old is not None:  # the log goes on (what came before is kept)
            self._publish_log = None
            self.record_published()
            log = cast(PublishLog, self._publish_log)
            log.messages[:0] = old.messages

    def call_in_loop(self, function: Callable[[], T]) -> T:
        """Run ``function()`` on the broker's event loop and return its result (for
        looking at broker objects directly; they may only be touched there)."""
        return self._loop.call(function)

    def add_vhost(self, name: str, *, users: Iterable[str] | None = None) -> BrokerFixture:
        """Create virtual host ``name`` (ValueError if it exists), let ``users`` (default:
        every user; LookupError for one that does not exist) do everything in it, and
        return a fixture bound to it."""

        def add() -> None:
            if name in self.broker.vhosts:
                raise ValueError(f"vhost {name!r} exists")
            grant = list(users) if users is not None else list(self.broker.auth.users)
            self._admin.add_vhost(name, users=grant)

        self._loop.call(add)
        return BrokerFixture(self.broker, name)

    def delete_vhost(self) -> bool:
        """Delete this fixture's virtual host (its clients get connection.close 320, its
        queues go); False if it was gone already."""
        return self._loop.call(self.broker.delete_vhost, self.vhost)

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
    def management_url(self) -> str:
        """The management API's base URL (``http://127.0.0.1:<port>``); RuntimeError if
        the broker serves none (start it with ``management_port=0``)."""
        url = self.broker.management_url
        if url is None:
            raise RuntimeError(
                "this broker serves no management API: start it with management_port=0 "
                "(pytest --kiltmq-management, or @pytest.mark.kiltmq_broker(management_port=0))"
            )
        return url

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

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

    def _queue_info(self, queue: Queue) -> QueueInfo:
        return queue_info(self._admin, queue)

    def _connection_info(self, conn: ServerConnection) -> ConnectionInfo:
        return self._admin.connection_info(conn)

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

        return self._loop.call(snapshot)

    def has_queue(self, name: str) -> bool:
        return self._loop.call(lambda: self._find_queue(name) is not None)

    def queue_names(self) -> list[str]:
        """The names of the queues in this fixture's vhost, sorted."""
        return self._loop.call(lambda: sorted(self._vhost().queues))

    def exchange(self, name: str) -> ExchangeInfo:
        """Exchange ``name`` with its bindings (LookupError if there is no such exchange;
        ``""`` is the default exchange, whose implicit bindings are not listed)."""

        def snapshot() -> ExchangeInfo:
            exchange = self._vhost().exchanges.get(name)
            if exchange is None:
                raise LookupError(f"no exchange '{name}' in vhost '{self.vhost}'")
            return self._admin.exchange_info(exchange)

        return self._loop.call(snapshot)

    def exchange_names(self) -> list[str]:
        """The names of the exchanges in this fixture's vhost (``amq.*`` included, the
        default exchange ``""`` too), sorted."""
        return self._loop.call(lambda: sorted(self._vhost().exchanges))

    def connections(
        self, name: str | None = None, *, user: str | None = None,
        vhost: VhostFilter = OWN_VHOST,
    ) -> list[ConnectionInfo]:
        """Open client connections: by default those of this fixture's vhost; ``name``
        (the client's ``connection_name``), ``user`` and ``vhost`` (None: any) filter."""
        return self._loop.call(
            lambda: [self._connection_info(c) for c in self._matching(name, user, vhost)]
        )

    # -- policies and definitions ----------------------------------------------------------

    def set_policy(
        self, name: str, pattern: str, definition: Mapping[str, Any], *,
        priority: int = 0, apply_to: str = "all", operator: bool = False,
    ) -> None:
        """Set a policy (``operator``: an operator policy) in this fixture's vhost, as
        ``rabbitmqctl set_policy``; it applies at once (ValueError with RabbitMQ's
        reason if RabbitMQ would refuse it)."""
        self._loop.call(lambda: self._admin.set_policy(
            self.vhost, name, pattern, dict(definition), priority=priority,
            apply_to=apply_to, operator=operator,
        ))

    def clear_policy(self, name: str, *, operator: bool = False) -> None:
        """Remove a policy (LookupError if there is none of that name)."""
        self._loop.call(lambda: self._admin.clear_policy(self.vhost, name, operator=operator))

    def load_definitions(
        self, source: str | os.PathLike[str] | Mapping[str, Any], *,
        vhost: VhostFilter = OWN_VHOST,
    ) -> None:
        """Load definitions in RabbitMQ's JSON export format (a file, or the object):
        by default their parameters, policies, queues, exchanges and bindings into this
        fixture's vhost, whatever vhost they name; ``vhost=None``: everything as the file
        says (users, vhosts, permissions too). AdminError if they cannot be loaded."""
        data: Any = source
        if not isinstance(source, Mapping):
            with open(source, encoding="utf-8") as file:
                data = json.load(file)
        target = self.vhost if vhost is OWN_VHOST else vhost
        assert not isinstance(target, _Own)
        self._loop.call(lambda: self._admin.import_definitions(data, target))

    def export_definitions(self, *, vhost: VhostFilter = None) -> dict[str, Any]:
        """Definitions as RabbitMQ 3.10 exports them: the whole broker's (default), or a
        vhost's (``OWN_VHOST``: this fixture's)."""
        target = self.vhost if vhost is OWN_VHOST else vhost
        assert not isinstance(target, _Own)
        return dict(self._loop.call(lambda: self._admin.export_definitions(target)))

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
        props = message_properties(properties)
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

        return self._loop.call(inject)

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

        return self._loop.call(close)

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

        return self._loop.call(drop)

    def __repr__(self) -> str:
        return f"BrokerFixture({self.url!r})"

