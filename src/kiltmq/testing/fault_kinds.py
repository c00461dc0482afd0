"""The kinds of fault (see :mod:`kiltmq.testing.fault_engine`): what each does to the
methods a client sends, or to the channels it applies to. They run on the broker's loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kiltmq.protocol import spec
from kiltmq.protocol.connection import ContentReceived, Event, MethodReceived
from kiltmq.protocol.errors import error_for
from kiltmq.testing.fault_engine import ActiveFault, Handle, event_channel

if TYPE_CHECKING:
    from kiltmq.broker.channel import Channel
    from kiltmq.broker.session import Session

__all__ = ["REFUSABLE", "CloseAfter", "HoldConfirms", "NackPublishes", "Refuse", "refusal_text"]

#: The methods a fault can refuse, by their spec names.
REFUSABLE: dict[str, type[spec.Method]] = {
    "queue.declare": spec.QueueDeclare,
    "queue.bind": spec.QueueBind,
    "queue.unbind": spec.QueueUnbind,
    "queue.delete": spec.QueueDelete,
    "queue.purge": spec.QueuePurge,
    "exchange.declare": spec.ExchangeDeclare,
    "exchange.bind": spec.ExchangeBind,
    "exchange.unbind": spec.ExchangeUnbind,
    "exchange.delete": spec.ExchangeDelete,
    "basic.consume": spec.BasicConsume,
}


def _patch(channel: Channel, name: str, method: Any) -> Any:
    """Put ``method`` on ``channel`` as ``name``; returns what to restore."""
    previous = channel.__dict__.get(name)
    setattr(channel, name, method)
    return previous


def _unpatch(channel: Channel, name: str, previous: Any) -> None:
    if previous is None:
        channel.__dict__.pop(name, None)
    else:
        setattr(channel, name, previous)


class NackPublishes(ActiveFault):
    """basic.nack, instead of basic.ack, for the next ``count`` publishes on channels in
    confirm mode (routed to ``queue`` if given); the message is not enqueued, as when a
    RabbitMQ queue process fails."""

    def __init__(
        self, vhost: str | None, connection: str | None, count: int, queue: str | None,
        channel: int | None = None,
    ) -> None:
        super().__init__(vhost, connection, channel)
        self.remaining = count
        self.queue = queue
        self._previous: dict[Channel, Any] = {}

    def patch(self, channel: Channel) -> None:
        original = channel._enqueue

        def enqueue(queues: tuple[Any, ...], message: Any, mandatory: bool) -> None:
            if self.done or not channel.confirm or (
                self.queue is not None
                and all(getattr(q, "name", None) != self.queue for q in queues)
            ):
                original(queues, message, mandatory)
                return
            channel.publish_seq += 1
            channel._nacked(channel.publish_seq)
            self.remaining -= 1
            if self.remaining <= 0:
                self.finish()

        self._previous[channel] = _patch(channel, "_enqueue", enqueue)

    def unpatch(self, channel: Channel) -> None:
        _unpatch(channel, "_enqueue", self._previous.pop(channel, None))


class HoldConfirms(ActiveFault):
    """Publisher confirms are kept back until the fault ends; then they all go out."""

    def __init__(
        self, vhost: str | None, connection: str | None, channel: int | None = None
    ) -> None:
        super().__init__(vhost, connection, channel)
        self._previous: dict[Channel, Any] = {}

    def patch(self, channel: Channel) -> None:
        self._previous[channel] = _patch(channel, "flush_confirms", _hold)

    def unpatch(self, channel: Channel) -> None:
        _unpatch(channel, "flush_confirms", self._previous.pop(channel, None))
        if not channel.closed:
            channel.flush_confirms()
            channel.out.want_flush()


def _hold() -> None:
    """Send no confirms now."""


def refusal_text(
    reply_code: int, method: spec.Method, vhost: str, user: str
) -> str:
    """RabbitMQ's reply text for refusing ``method`` with ``reply_code``."""
    kind, name = _subject(method)
    where = f"{kind} '{name}' in vhost '{vhost}'"
    if reply_code == 403:
        return f"ACCESS_REFUSED - access to {where} refused for user '{user}'"
    if reply_code == 404:
        return f"NOT_FOUND - no {where}"
    if reply_code == 405:
        return (
            f"RESOURCE_LOCKED - cannot obtain exclusive access to locked {where}. It could "
            "be originally declared on another connection or the exclusive property value "
            "does not match that of the original declaration."
        )
    if reply_code == 406:
        durable = bool(getattr(method, "durable", False))
        return (
            f"PRECONDITION_FAILED - inequivalent arg 'durable' for {where}: received "
            f"'{str(durable).lower()}' but current is '{str(not durable).lower()}'"
        )
    return f"refused {method.NAME} on {where}"


def _subject(method: spec.Method) -> tuple[str, str]:
    """What a refusal names: the queue, or the exchange (a binding's source)."""
    if isinstance(method, (spec.QueueBind, spec.QueueUnbind)):
        return "exchange", method.exchange
    if isinstance(method, (spec.ExchangeBind, spec.ExchangeUnbind)):
        return "exchange", method.source
    if isinstance(method, (spec.ExchangeDeclare, spec.ExchangeDelete)):
        return "exchange", method.exchange
    return "queue", str(getattr(method, "queue", ""))


class Refuse(ActiveFault):
    """The next ``count`` matching methods (``kind``, naming ``name`` if given) are
    refused: channel.close with ``reply_code`` and RabbitMQ's text for it."""

    def __init__(
        self, vhost: str | None, connection: str | None, kind: type[spec.Method],
        reply_code: int, reply_text: str | None, name: str | None, count: int,
        channel: int | None = None,
    ) -> None:
        super().__init__(vhost, connection, channel)
        self.kind = kind
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.name = name
        self.remaining = count

    def intercept(self, session: Session, event: Event, deliver: Handle) -> bool:
        if not isinstance(event, MethodReceived) or type(event.method) is not self.kind:
            return False
        if not self.applies_to_channel(event.channel):
            return False
        method = event.method
        if self.name is not None and self.name not in _names(method):
            return False
        channel = session.channels.get(event.channel)
        if channel is None or channel.closed:
            return False
        vhost = session.vhost.name if session.vhost is not None else ""
        text = self.reply_text or refusal_text(
            self.reply_code, method, vhost, session.username or ""
        )
        error = error_for(
            self.reply_code, text, method.CLASS_ID, method.METHOD_ID, scope="channel"
        )
        session.channel_error(channel, error)
        self.remaining -= 1
        if self.remaining <= 0:
            self.finish()
        return True


def _names(method: spec.Method) -> set[str]:
    return {
        str(value) for attr in ("queue", "exchange", "source", "destination")
        if isinstance(value := getattr(method, attr, None), str)
    }


class CloseAfter(ActiveFault):
    """After the client's next ``after`` methods (a publish with its content counts
    once) on ``channel`` (None: any), close the channel or the connection with
    ``reply_code`` and ``reply_text``, or (``action`` "drop") reset the TCP connection."""

    def __init__(
        self, vhost: str | None, connection: str | None, action: str, channel: int | None,
        after: int, reply_code: int, reply_text: str,
    ) -> None:
        super().__init__(vhost, connection, channel)
        self.action = action
        self.remaining = after
        self.reply_code = reply_code
        self.reply_text = reply_text

    def intercept(self, session: Session, event: Event, deliver: Handle) -> bool:
        number = event_channel(event)
        if number is None or not self.applies_to_channel(number):
            return False
        if not isinstance(event, (MethodReceived, ContentReceived)):
            return False
        deliver([event])
        self.remaining -= 1
        if self.remaining > 0:
            return True
        self.finish()
        if self.action == "drop":
            session.conn.abort()
        elif self.action == "channel":
            channel = session.channels.get(number)
            if channel is not None:
                session.channel_error(
                    channel, error_for(self.reply_code, self.reply_text, scope="channel")
                )
        else:
            session.connection_error(
                error_for(self.reply_code, self.reply_text, scope="connection")
            )
        return True
