"""Which consumer gets the next message: the ordering strategies of a queue's delivery
loop.

A queue has one :class:`Dispatch`, chosen when its consumers change (never per message):

* :class:`RoundRobin`: consumers take turns, skipping those that cannot take a message
  (prefetch used up, connection output full).
* :class:`ByPriority`: consumer priorities (``x-priority``): the highest priority group
  with a consumer that can take a message is served, round-robin within the group.
* :class:`SingleActive`: x-single-active-consumer: only the active consumer is served,
  even when it cannot take a message (then the message waits). The first consumer
  registered is active until it goes; then, as in RabbitMQ, the one of highest priority,
  the earliest registered among equals.

:class:`Lineup` keeps a queue's consumers in order and chooses the strategy; every
strategy reads that list, and :meth:`Dispatch.pick` returns the consumer to deliver to,
or None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["ByPriority", "Dispatch", "Lineup", "RoundRobin", "SingleActive", "Subscriber"]


class Gate(Protocol):
    """The consumer's channel, as far as dispatch is concerned."""

    def can_deliver(self, consumer: Any) -> bool:
        """Whether ``consumer`` can take a message now."""


class Subscriber(Protocol):
    """What dispatch reads of a consumer."""

    @property
    def channel(self) -> Gate: ...

    @property
    def priority(self) -> int: ...


C = TypeVar("C", bound=Subscriber)


class Dispatch(Generic[C]):
    """The ordering strategy of one queue's deliveries."""

    __slots__ = ("consumers",)

    def __init__(self, consumers: list[C]) -> None:
        #: The queue's consumers (the queue's own list, not a copy).
        self.consumers = consumers

    def pick(self) -> C | None:
        """The consumer to deliver the next message to (None: nobody can take one)."""
        raise NotImplementedError

    def added(self, consumer: C) -> None:
        """``consumer`` was just inserted into the list."""

    def removed(self, consumer: C, index: int) -> None:
        """``consumer`` was just removed from the list, at ``index``."""


class RoundRobin(Dispatch[C]):
    """Consumers take turns."""

    __slots__ = ("next",)

    def __init__(self, consumers: list[C]) -> None:
        super().__init__(consumers)
        #: Where the next turn starts (an index into the list).
        self.next = 0

    def pick(self) -> C | None:
        consumers = self.consumers
        n = len(consumers)
        start = self.next
        if start >= n:
            if not n:
                return None
            start = 0
        consumer = consumers[start]
        if consumer.channel.can_deliver(consumer):  # the common case: its turn, and room
            self.next = start + 1
            return consumer
        for i in range(1, n):
            index = (start + i) % n
            consumer = consumers[index]
            if consumer.channel.can_deliver(consumer):
                self.next = index + 1
                return consumer
        return None

    def removed(self, consumer: C, index: int) -> None:
        if index < self.next:
            self.next -= 1


class ByPriority(Dispatch[C]):
    """Consumer priorities: the highest priority group first, round-robin within a
    group (the list is sorted by priority, highest first)."""

    __slots__ = ("turns",)

    def __init__(self, consumers: list[C]) -> None:
        super().__init__(consumers)
        #: Per priority: where the next turn in that group starts.
        self.turns: dict[int, int] = {}

    def pick(self) -> C | None:
        consumers = self.consumers
        n = len(consumers)
        i = 0
        while i < n:
            priority = consumers[i].priority
            j = i + 1
            while j < n and consumers[j].priority == priority:
                j += 1
            size = j - i
            start = self.turns.get(priority, 0)
            for k in range(size):
                consumer = consumers[i + (start + k) % size]
                if consumer.channel.can_deliver(consumer):
                    self.turns[priority] = (start + k + 1) % size
                    return consumer
            i = j
        return None


class SingleActive(Dispatch[C]):
    """x-single-active-consumer: one consumer gets every message."""

    __slots__ = ("active",)

    def __init__(self, consumers: list[C]) -> None:
        super().__init__(consumers)
        self.active: C | None = consumers[0] if consumers else None

    def pick(self) -> C | None:
        consumer = self.active
        if consumer is not None and consumer.channel.can_deliver(consumer):
            return consumer
        return None

    def added(self, consumer: C) -> None:
        if self.active is None:
            self.active = consumer

    def removed(self, consumer: C, index: int) -> None:
        if consumer is self.active:
            # the list is sorted by priority (stable): its head is the highest priority
            # consumer registered first
            consumers = self.consumers
            self.active = consumers[0] if consumers else None


class Lineup(Generic[C]):
    """The consumers of one queue in dispatch order, and the strategy that picks among
    them (chosen here, as consumers come: never per message).

    The order is registration order; once some consumer has an x-priority, the list is
    kept sorted by priority, highest first, registration order among equals.
    """

    __slots__ = ("consumers", "single_active", "prioritized", "dispatch", "pick")

    def __init__(self, single_active: bool) -> None:
        self.consumers: list[C] = []
        self.single_active = single_active
        #: Whether some consumer ever had an x-priority (then the list stays sorted).
        self.prioritized = False
        self.dispatch: Dispatch[C] = self._strategy()
        #: The consumer to deliver the next message to (None: nobody can take one).
        self.pick: Callable[[], C | None] = self.dispatch.pick

    def _strategy(self) -> Dispatch[C]:
        if self.single_active:
            return SingleActive(self.consumers)
        if self.prioritized:
            return ByPriority(self.consumers)
        return RoundRobin(self.consumers)

    def _use(self, dispatch: Dispatch[C]) -> None:
        self.dispatch = dispatch
        self.pick = dispatch.pick

    def add(self, consumer: C) -> None:
        consumers = self.consumers
        if consumer.priority or self.prioritized:
            if not self.prioritized:
                self.prioritized = True
                if not self.single_active:  # (the active consumer stays)
                    self._use(ByPriority(consumers))
            at = len(consumers)
            while at and consumers[at - 1].priority < consumer.priority:
                at -= 1
            consumers.insert(at, consumer)
        else:
            consumers.append(consumer)
        self.dispatch.added(consumer)

    def remove(self, consumer: C) -> bool:
        """Remove ``consumer``; False if it was not there."""
        try:
            index = self.consumers.index(consumer)
        except ValueError:
            return False
        del self.consumers[index]
        self.dispatch.removed(consumer, index)
        return True

    def clear(self) -> list[C]:
        """Remove every consumer; returns them."""
        consumers = list(self.consumers)
        self.consumers.clear()
        self._use(self._strategy())
        return consumers
