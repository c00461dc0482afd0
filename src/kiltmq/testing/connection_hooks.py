"""Callbacks for every new client connection of a broker, for the test tools that watch
or disturb connections (faults, frame capture). While one is registered the broker's
``connection_made`` is wrapped (an instance attribute over the method); once none is
left the broker is as before."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiltmq.broker import Broker
    from kiltmq.broker.server import ServerConnection

__all__ = ["ConnectionHooks", "hooks_of"]

Hook = Callable[["ServerConnection"], None]


class ConnectionHooks:
    """The hooks of one broker (its loop only)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._hooks: list[Hook] = []

    def add(self, hook: Hook) -> None:
        if not self._hooks:
            broker: Any = self.broker
            original = type(self.broker).connection_made

            def connection_made(conn: ServerConnection) -> None:
                original(self.broker, conn)
                for each in list(self._hooks):
                    each(conn)

            broker.connection_made = connection_made
        self._hooks.append(hook)

    def remove(self, hook: Hook) -> None:
        if hook in self._hooks:
            self._hooks.remove(hook)
        if not self._hooks:
            self.broker.__dict__.pop("connection_made", None)


def hooks_of(broker: Broker) -> ConnectionHooks:
    hooks = _HOOKS.get(broker)
    if hooks is None:
        hooks = _HOOKS[broker] = ConnectionHooks(broker)
    return hooks


_HOOKS: weakref.WeakKeyDictionary[Broker, ConnectionHooks] = weakref.WeakKeyDictionary()
