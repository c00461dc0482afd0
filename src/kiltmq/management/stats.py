"""Message statistics as RabbitMQ shows them: counters with their rates.

The broker only counts (plain integers on channels and queues, see
:mod:`kiltmq.broker.monitor`; a closing channel adds its counts to its vhost's); a
:class:`Sampler` reads the counters every :attr:`Sampler.INTERVAL` seconds and a rate is
the change between its last two samples per second, as RabbitMQ's ``basic`` rates
mode.

An object whose counters did not change between the last two samples is idle
(RabbitMQ's ``idle_since``, on queues and channels): since the time of the sample that
first saw its counters as they are. Nothing on the message path reads a clock for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from kiltmq.broker.monitor import MessageCounts, Monitor

__all__ = [
    "CHANNEL_FIELDS",
    "OVERVIEW_FIELDS",
    "QUEUE_FIELDS",
    "Sampler",
    "exchange_stats",
    "message_stats",
    "with_rates",
]

#: The counters RabbitMQ shows for a queue, for a channel, and for the whole broker.
QUEUE_FIELDS = (
    "ack", "deliver", "deliver_get", "deliver_no_ack", "get", "get_empty", "get_no_ack",
    "publish", "redeliver",
)
CHANNEL_FIELDS = (*QUEUE_FIELDS, "confirm", "drop_unroutable", "return_unroutable")
OVERVIEW_FIELDS = CHANNEL_FIELDS

_NAMES = tuple(f.name for f in fields(MessageCounts))


def _values(counts: MessageCounts | tuple[int, ...]) -> dict[str, int]:
    values = dict(
        zip(_NAMES, counts.values() if isinstance(counts, MessageCounts) else counts, strict=True)
    )
    values["deliver_get"] = (
        values["deliver"] + values["deliver_no_ack"] + values["get"] + values["get_no_ack"]
    )
    return values


class Sampler:
    """Samples counters periodically; rates from the last two samples."""

    INTERVAL = 5.0

    def __init__(self, monitor: Monitor, interval: float | None = None) -> None:
        self.monitor = monitor
        self.interval = interval if interval is not None else self.INTERVAL
        # key -> ((time, values) before the last, (time, values) last)
        self._samples: dict[Hashable, tuple[tuple[float, tuple[int, ...]], ...]] = {}
        # key -> wall-clock time of the first sample that saw its values as they are
        self._since: dict[Hashable, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._now: Callable[[], float] = lambda: 0.0
        self._at = 0.0
        self._wall = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._now = loop.time
        self.sample()

        def tick() -> None:
            self.sample()
            self._timer = loop.call_later(self.interval, tick)

        self._timer = loop.call_later(self.interval, tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- sampling ---------------------------------------------------------------------

    def _record(self, seen: dict[Hashable, Any], key: Hashable, values: tuple[int, ...]) -> None:
        history = self._samples.get(key, ())
        seen[key] = (*history[-1:], (self._at, values))
        if not history or history[-1][1] != values:
            self._since[key] = self._wall

    def sample(self) -> None:
        """Read every counter once (on the broker's loop)."""
        monitor = self.monitor
        self._at = self._now()
        self._wall = time.time()
        seen: dict[Hashable, Any] = {}
        for channel in monitor.channels():
            self._record(seen, ("channel", channel.name), channel.counts.values())
        overall = MessageCounts()
        for vhost, counts in monitor.vhost_counts().items():
            overall = overall + counts
            self._record(seen, ("vhost", vhost), counts.values())
        for conn in monitor.connections():
            self._record(seen, ("connection", conn.name), (conn.recv_oct, conn.send_oct))
        queued = [0, 0, 0]
        for queue in monitor.queue_figures():
            key = ("queue", queue.vhost, queue.name)
            self._record(seen, key, queue.counts)
            messages = queue.ready + queue.unacked
            self._record(seen, ("depth", *key), (messages, queue.ready, queue.unacked))
            queued[0] += messages
            queued[1] += queue.ready
            queued[2] += queue.unacked
        for (vhost, name), published in monitor.exchange_counts().items():
            self._record(seen, ("exchange", vhost, name), published)
        self._record(seen, "churn", monitor.broker.churn.values())
        self._record(seen, "overview", overall.values())
        self._record(seen, "queue_totals", tuple(queued))
        self._samples = seen
        self._since = {k: v for k, v in self._since.items() if k in seen}

    def totals(self, vhost: str | None = None) -> MessageCounts:
        """What the channels of ``vhost`` (None: of every vhost) counted, open and
        closed ones."""
        return sum(self.monitor.vhost_counts(vhost).values(), MessageCounts())

    def rates(self, key: Hashable, size: int) -> tuple[float, ...]:
        """Per-second change of the values recorded under ``key`` between the last two
        samples (zeros until there are two)."""
        history = self._samples.get(key, ())
        if len(history) < 2:
            return (0.0,) * size
        (t0, v0), (t1, v1) = history[-2], history[-1]
        span = t1 - t0
        if span <= 0:
            return (0.0,) * size
        return tuple(max(0.0, (b - a) / span) for a, b in zip(v0, v1, strict=True))

    def idle_since(self, *keys: Hashable) -> str | None:
        """When the objects recorded under ``keys`` last changed, as RabbitMQ shows
        ``idle_since`` (local time, "2026-12-06T11:42:09.939+00:00"), if none changed
        between the last two samples; else None."""
        since = 0.0
        for key in keys:
            history = self._samples.get(key, ())
            if len(history) < 2 or history[0][1] != history[1][1]:
                return None
            since = max(since, self._since[key])
        moment = datetime.fromtimestamp(since).astimezone()
        return moment.isoformat(timespec="milliseconds")


def message_stats(
    counts: MessageCounts | tuple[int, ...],
    rates: Sequence[float],
    names: Sequence[str],
    *,
    always: bool = False,
) -> dict[str, Any] | None:
    """RabbitMQ's ``message_stats`` object: each counter in ``names`` and its
    ``<name>_details`` rate. None (leave it out) when nothing was counted, unless
    ``always``."""
    values = _values(counts)
    if not always and not any(values[n] for n in names):
        return None
    rate = dict(zip(_NAMES, rates, strict=True))
    rate["deliver_get"] = rate["deliver"] + rate["deliver_no_ack"] + rate["get"] + rate[
        "get_no_ack"
    ]
    stats: dict[str, Any] = {}
    for name in names:
        stats[name] = values[name]
        stats[f"{name}_details"] = {"rate": round(rate[name], 1)}
    return stats


def exchange_stats(
    publish_in: int, publish_out: int, rates: Sequence[float]
) -> dict[str, Any] | None:
    """An exchange's ``message_stats`` (None until a message was published to it)."""
    if not publish_in:
        return None
    stats: dict[str, Any] = {}
    with_rates(stats, {"publish_in": publish_in, "publish_out": publish_out}, rates)
    return stats


def with_rates(item: dict[str, Any], values: dict[str, int], rates: Sequence[float]) -> None:
    """Put ``values`` with ``<name>_details`` rates into ``item``."""
    for (name, value), rate in zip(values.items(), rates, strict=True):
        item[name] = value
        item[f"{name}_details"] = {"rate": round(rate, 1)}
