"""Faults on demand (``amqp_broker.faults``): the failures RabbitMQ can hand a client,
set by the test. Each is scoped to the fixture's virtual host (``vhost=None``: the whole
broker, every vhost; ``vhost="name"``: another one), to one connection if given (its
client-given ``connection_name`` or its "host:port"; None: every connection), and to
one channel number if given (``channel=``; None: every channel). The resource alarms
are the whole broker's, as RabbitMQ's are. Each method returns a :class:`Fault`; every
fault ends when the test does (:meth:`Faults.clear`), and a fault not yet done is
carried over an ``amqp_broker.restart()``.

::

    with amqp_broker.faults.hold_confirms():
        publish_order()                  # your code waits for its confirm
        ...                              # and has not got it
    # released: the confirm arrives
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from kiltmq.protocol.errors import error_for
from kiltmq.testing.fault_engine import ActiveFault, carry_over, engine_of
from kiltmq.testing.fault_kinds import REFUSABLE, CloseAfter, HoldConfirms, NackPublishes, Refuse
from kiltmq.testing.fixture_waits import OWN_VHOST, VhostFilter, _Own

if TYPE_CHECKING:
    from kiltmq.broker import Broker
    from kiltmq.broker.session import Session

__all__ = ["Fault", "FaultTarget", "Faults"]

T = TypeVar("T")


class FaultTarget(Protocol):
    """What the faults need of the fixture: its broker and vhost, and its loop."""

    @property
    def broker(self) -> Broker: ...

    @property
    def vhost(self) -> str: ...

    def call_in_loop(self, function: Callable[[], T]) -> T: ...


class Fault:
    """A fault that is set. :meth:`release` ends it (a ``with`` block does too)."""

    def __init__(self, target: FaultTarget, undo: Callable[[], None],
                 active: Callable[[], bool]) -> None:
        self._target = target
        self._undo = undo
        self._active = active

    @property
    def active(self) -> bool:
        """Whether it still has something to do (a counted fault ends by itself)."""
        return self._target.call_in_loop(self._active)

    def release(self) -> None:
        """End the fault (held confirms go out now, an alarm clears)."""
        self._target.call_in_loop(self._undo)

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class Faults:
    """The faults of one fixture (see the module docstring)."""

    def __init__(self, target: FaultTarget) -> None:
        self._target = target
        self._alarms: set[str] = set()

    # -- on the broker's loop ----------------------------------------------------------

    def _set(self, fault: ActiveFault) -> Fault:
        def add() -> None:
            engine_of(self._target.broker).add(fault)

        self._target.call_in_loop(add)
        return Fault(self._target, fault.finish, lambda: not fault.done)

    def _vhost(self, vhost: VhostFilter) -> str | None:
        """The vhost a fault covers: the fixture's, one named, or None (every one)."""
        if isinstance(vhost, _Own):
            return self._target.vhost
        return vhost

    def _sessions(self, connection: str | None, vhost: VhostFilter) -> list[Session]:
        probe = ActiveFault(self._vhost(vhost), connection)
        return [
            conn.session for conn in list(self._target.broker.connections)
            if not conn.closed and not conn.session.closing and probe.applies_to(conn.session)
        ]

    # -- confirms ----------------------------------------------------------------------

    def nack_publishes(
        self, count: int = 1, *, connection: str | None = None, queue: str | None = None,
        channel: int | None = None, vhost: VhostFilter = OWN_VHOST,
    ) -> Fault:
        """Answer the next ``count`` publishes on channels in confirm mode (routed to
        ``queue``, if given) with basic.nack: the message is not enqueued, as when a
        RabbitMQ queue fails to take it."""
        return self._set(
            NackPublishes(self._vhost(vhost), connection, count, queue, channel)
        )

    def hold_confirms(
        self, *, connection: str | None = None, channel: int | None = None,
        vhost: VhostFilter = OWN_VHOST,
    ) -> Fault:
        """Keep publisher confirms back until :meth:`Fault.release`; they all go out
        then (as from a RabbitMQ slow to write to disk)."""
        return self._set(HoldConfirms(self._vhost(vhost), connection, channel))

    # -- refusals ----------------------------------------------------------------------

    def refuse(
        self, method: str, reply_code: int, reply_text: str | None = None, *,
        name: str | None = None, connection: str | None = None, count: int = 1,
        channel: int | None = None, vhost: VhostFilter = OWN_VHOST,
    ) -> Fault:
        """Refuse the next ``count`` ``method`` s ("queue.declare", "queue.bind",
        "exchange.declare", "exchange.bind", "basic.consume", ...; naming ``name``,
        if given) with channel.close ``reply_code`` (403, 404, 405, 406) and
        RabbitMQ's text for it (or ``reply_text``)."""
        kind = REFUSABLE.get(method)
        if kind is None:
            raise ValueError(f"cannot refuse {method!r}; one of {sorted(REFUSABLE)}")
        return self._set(
            Refuse(
                self._vhost(vhost), connection, kind, reply_code, reply_text, name, count,
                channel,
            )
        )

    # -- closing -----------------------------------------------------------------------

    def close_channel(
        self, connection: str | None, channel: int | None = None, *, reply_code: int = 406,
        reply_text: str = "PRECONDITION_FAILED - closed by test", after: int = 0,
        vhost: VhostFilter = OWN_VHOST,
    ) -> Fault:
        """Close ``channel`` (None: every channel) of ``connection`` with channel.close
        ``reply_code`` and ``reply_text``: now, or after the client's next ``after``
        methods on it (a publish with its content counts once)."""
        if after:
            return self._set(CloseAfter(
                self._vhost(vhost), connection, "channel", channel, after, reply_code,
                reply_text,
            ))

        def close() -> None:
            for session in self._sessions(connection, vhost):
                for number, chan in list(session.channels.items()):
                    if channel is None or number == channel:
                        session.channel_error(
                            chan, error_for(reply_code, reply_text, scope="channel")
                        )
                session.conn.want_flush()

        self._target.call_in_loop(close)
        return _done(self._target)

    def close_connection(
        self, connection: str | None, *, reply_code: int = 320,
        reply_text: str = "CONNECTION_FORCED - closed by test", after: int = 0,
        channel: int | None = None, vhost: VhostFilter = OWN_VHOST,
    ) -> Fault:
        """Close ``connection`` with connection.close ``reply_code`` and ``reply_text``:
        now, or after the client's next ``after`` methods (on ``channel``, if given)."""
        if after:
            return self._set(CloseAfter(
                self._vhost(vhost), connection, "connection", channel, after, reply_code,
                reply_text,
            ))

        def close() -> None:
            for session in self._sessions(connection, vhost):
                session.connection_error(
                    error_for(reply_code, reply_text, scope="connection")
                )

        self._target.call_in_loop(close)
        return _done(self._target)

    def drop_connection(
        self, connection: str | None, *, after: int = 0, channel: int | None = None,
        vhost: VhostFilter = OWN_VHOST,
    ) -> Fault:
        """Reset ``connection``'s TCP connection without connection.close, as a network
        partition or a crashed node does: now, or after the client's next ``after``
        methods (on ``channel``, if given)."""
        if after:
            return self._set(
                CloseAfter(self._vhost(vhost), connection, "drop", channel, after, 0, "")
            )

        def drop() -> None:
            for session in self._sessions(connection, vhost):
                session.conn.abort()

        self._target.call_in_loop(drop)
        return _done(self._target)

    # -- alarms ------------------------------------------------------------------------

    def alarm(self, resource: str = "memory") -> Fault:
        """Raise the ``resource`` alarm ("memory" or "disk"): publishing connections get
        connection.blocked ("low on memory") and are not read until
        :meth:`Fault.release` clears it (on a broker with a ``memory_limit``, the
        periodic check may clear the memory alarm before that)."""
        if resource not in ("memory", "disk"):
            raise ValueError("RabbitMQ's alarms are 'memory' and 'disk'")
        target = self._target
        target.call_in_loop(lambda: target.broker.set_alarm(resource, True, "raised by test"))
        self._alarms.add(resource)

        def clear() -> None:
            self._alarms.discard(resource)
            target.broker.set_alarm(resource, False, "cleared by test")

        # the broker of the moment: a restart carries the alarm over
        return Fault(target, clear, lambda: resource in target.broker.alarms)

    def block_publishers(self) -> Fault:
        """Block publishing connections (connection.blocked) until released: the
        memory alarm."""
        return self.alarm("memory")

    # -- restart -----------------------------------------------------------------------

    def carry_over(self, old: Broker) -> None:
        """Set the faults not yet done, and the alarms raised, of ``old`` (a broker that
        stopped) on the fixture's broker, restarted in its place."""
        broker = self._target.broker

        def carry() -> None:
            carry_over(old, broker)
            for resource in self._alarms:
                broker.set_alarm(resource, True, "raised by test")

        self._target.call_in_loop(carry)

    # -- ending ------------------------------------------------------------------------

    def clear(self) -> None:
        """End every fault of this broker (the plugin does it after each test)."""
        broker = self._target.broker
        alarms, self._alarms = self._alarms, set()

        def clear() -> None:
            engine_of(broker).clear()
            for resource in alarms:
                broker.set_alarm(resource, False, "cleared by test")

        self._target.call_in_loop(clear)


def _done(target: FaultTarget) -> Fault:
    """A fault that already did what it does."""
    return Fault(target, _nothing, _inactive)


def _nothing() -> None:
    """Nothing left to undo."""


def _inactive() -> bool:
    return False

