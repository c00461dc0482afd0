"""Faults a test sets on a running broker, applied on the broker's loop.

Nothing in the broker checks for faults. While at least one is active, the engine puts
its own ``handle`` on each session (new ones through
:mod:`~kiltmq.testing.connection_hooks`) (an instance attribute over ``Session.handle``), sees
the client's methods before the session does, and puts faulty ``_enqueue`` or
``flush_confirms`` methods on the channels a fault applies to; once the last fault is
gone every one of these is removed again, and the broker runs as if never touched.
Only what RabbitMQ itself can do is offered: nacks, late confirms, refusals, closes,
dropped connections, alarms.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiltmq.protocol.connection import ContentReceived, Event, MethodReceived
from kiltmq.testing.connection_hooks import hooks_of

if TYPE_CHECKING:
    from kiltmq.broker import Broker
    from kiltmq.broker.channel import Channel
    from kiltmq.broker.server import ServerConnection
    from kiltmq.broker.session import Session

__all__ = ["ActiveFault", "FaultEngine", "carry_over", "engine_of"]

Handle = Callable[[list[Event]], None]


class ActiveFault:
    """One fault: where it applies (``vhost``, None: every vhost; ``connection``, None:
    every connection; ``channel``, a channel number, None: every channel), and what it
    does there. Subclasses override the hooks they need; ``done`` once it has nothing
    left to do."""

    def __init__(
        self, vhost: str | None, connection: str | None, channel: int | None = None
    ) -> None:
        self.vhost = vhost
        self.connection = connection
        self.channel = channel
        self.done = False
        self.engine: FaultEngine | None = None

    def applies_to(self, session: Session) -> bool:
        if not session.opened or session.vhost is None:
            return False
        if self.vhost is not None and session.vhost.name != self.vhost:
            return False
        if self.connection is None:
            return True
        name = session.client_properties.get("connection_name")
        return self.connection in (name, session.peer_name)

    def applies_to_channel(self, number: int) -> bool:
        """Whether the fault covers channel ``number`` (of a session it applies to)."""
        return self.channel is None or number == self.channel

    def intercept(self, session: Session, event: Event, deliver: Handle) -> bool:
        """Whether the fault took ``event``: the session must not see it, unless the fault
        handed it on with ``deliver`` itself."""
        return False

    def patch(self, channel: Channel) -> None:
        """Put the fault's methods on ``channel`` (called once per channel)."""

    def unpatch(self, channel: Channel) -> None:
        """Take them off again."""

    def finish(self) -> None:
        """Stop: take every patch off."""
        self.done = True
        if self.engine is not None:
            self.engine.remove(self)


def engine_of(broker: Broker) -> FaultEngine:
    """The broker's fault engine (one per broker)."""
    engine = _ENGINES.get(broker)
    if engine is None:
        engine = _ENGINES[broker] = FaultEngine(broker)
    return engine


class FaultEngine:
    """The active faults of one broker, and the patches they need (loop only)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.faults: list[ActiveFault] = []
        self._sessions: dict[Session, Handle] = {}
        #: channel -> the faults patched onto it
        self._patched: weakref.WeakKeyDictionary[Channel, list[ActiveFault]] = (
            weakref.WeakKeyDictionary()
        )

    def add(self, fault: ActiveFault) -> None:
        fault.engine = self
        if not self.faults:
            self._install()
        self.faults.append(fault)
        for session in list(self._sessions):
            self._patch_channels(session)

    def remove(self, fault: ActiveFault) -> None:
        if fault not in self.faults:
            return
        self.faults.remove(fault)
        for channel, faults in list(self._patched.items()):
            if fault in faults:
                faults.remove(fault)
                fault.unpatch(channel)
        if not self.faults:
            self._uninstall()

    def clear(self) -> None:
        for fault in list(self.faults):
            fault.done = True
            self.remove(fault)

    def detach(self) -> list[ActiveFault]:
        """Forget the faults of a broker that has stopped, and return those not done
        (for the broker that replaces it: :func:`carry_over`). Its sessions and channels
        are gone, so nothing is unpatched; the broker's loop must have stopped."""
        faults = [f for f in self.faults if not f.done]
        self.faults.clear()
        self._patched = weakref.WeakKeyDictionary()
        self._sessions.clear()
        hooks_of(self.broker).remove(self._connection_made)
        for fault in faults:
            fault.engine = None
        return faults

    # -- sessions ---------------------------------------------------------------------

    def _install(self) -> None:
        hooks_of(self.broker).add(self._connection_made)
        for conn in list(self.broker.connections):
            self._hook(conn.session)

    def _connection_made(self, conn: ServerConnection) -> None:
        self._hook(conn.session)

    def _uninstall(self) -> None:
        hooks_of(self.broker).remove(self._connection_made)
        for session in self._sessions:
            session.__dict__.pop("handle", None)
        self._sessions.clear()

    def _hook(self, session: Session) -> None:
        if session in self._sessions:
            return
        original: Handle = session.handle
        self._sessions[session] = original
        target: Any = session
        target.handle = lambda events: self._handle(session, original, events)

    def _handle(self, session: Session, original: Handle, events: list[Event]) -> None:
        passed: list[Event] = []
        faults = [f for f in self.faults if f.applies_to(session)]
        for event in events:
            if faults and passed:  # what came before goes first
                original(passed)
                passed = []
            if session.closing:
                return
            if not any(fault.intercept(session, event, original) for fault in faults
                       if not fault.done):
                passed.append(event)
        if passed:
            original(passed)
        if self.faults:
            self._patch_channels(session)

    def _patch_channels(self, session: Session) -> None:
        for fault in self.faults:
            if not fault.applies_to(session):
                continue
            for channel in list(session.channels.values()):
                if not fault.applies_to_channel(channel.number):
                    continue
                faults = self._patched.setdefault(channel, [])
                if fault not in faults:
                    faults.append(fault)
                    fault.patch(channel)


def carry_over(old: Broker, new: Broker) -> None:
    """Set the unfinished faults of ``old``, a broker that stopped, on ``new``, the
    broker restarted in its place (call on ``new``'s loop after ``old``'s has stopped)."""
    engine = _ENGINES.pop(old, None)
    if engine is None:
        return
    faults = engine.detach()
    target = engine_of(new)
    for fault in faults:
        target.add(fault)


def event_channel(event: Event) -> int | None:
    """The channel number of a method or content event (None for others)."""
    if isinstance(event, (MethodReceived, ContentReceived)):
        return event.channel
    return None


_ENGINES: weakref.WeakKeyDictionary[Broker, FaultEngine] = weakref.WeakKeyDictionary()
