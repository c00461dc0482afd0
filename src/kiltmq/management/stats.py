"""Message statistics as RabbitMQ shows them: counters with their rates.

The broker only counts (plain integers on channels and queues, see
:mod:`kiltmq.broker.monitor`; a closing channel adds its counts to its vhost's); a
:class:`Sampler` reads the counters every :attr:`Sampler.INTERVAL` seconds and a rate is
the change between its last two samples per second, as RabbitMQ's ``basic`` rates
mode.

The sampler also keeps each object's history for :attr:`Sampler.HISTORY` seconds
(RabbitMQ's first retention period, 600 s at 5 s): only the samples whose values
changed, as flat ``array`` rows, so an idle object costs one row and a busy one at most
``HISTORY / INTERVAL + 1``. A GET of the overview, a queue or a connection with
RabbitMQ's ``lengths_age``/``lengths_incr``, ``msg_rates_age``/``msg_rates_incr`` or
``data_rates_age``/``data_rates_incr`` gets ``samples`` (newest first, one every
``incr`` seconds over ``age`` seconds, 0 before the object was first sampled), ``avg``
and ``avg_rate`` in the ``<name>_details`` of the figures they cover (:class:`Range`,
:func:`add_history`).

An object whose counters did not change between the last two samples is idle
(RabbitMQ's ``idle_since``, on queues and channels): since the time of the sample that
first saw its counters as they are. Nothing on the message path reads a clock for it.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from kiltmq.broker.monitor import MessageCounts, Monitor
from kiltmq.management.errors import bad_request

__all__ = [
    "CHANNEL_FIELDS",
    "OVERVIEW_FIELDS",
    "QUEUE_FIELDS",
    "Range",
    "Sampler",
    "add_history",
    "counter_history",
    "exchange_stats",
    "message_stats",
    "object_history",
    "overview_history",
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
#: The names of a message_stats history row.
_STATS_NAMES = (*_NAMES, "deliver_get")


def _values(counts: MessageCounts | tuple[int, ...]) -> dict[str, int]:
    values = dict(
        zip(_NAMES, counts.values() if isinstance(counts, MessageCounts) else counts, strict=True)
    )
    values["deliver_get"] = (
        values["deliver"] + values["deliver_no_ack"] + values["get"] + values["get_no_ack"]
    )
    return values


#: The most samples one range asks for (``age / incr``), as RabbitMQ.
MAX_RANGE = 500
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Range:
    """RabbitMQ's ``<prefix>_age`` and ``<prefix>_incr`` query parameters: samples every
    ``incr`` seconds over the last ``age`` seconds."""

    age: int
    incr: int

    @classmethod
    def of(cls, query: Mapping[str, str], prefix: str) -> Range | None:
        """The range asked for (None when either parameter is missing or not an
        integer, as RabbitMQ ignores it); 400 for a range RabbitMQ refuses."""
        age, incr = query.get(f"{prefix}_age", ""), query.get(f"{prefix}_incr", "")
        if not _INTEGER.fullmatch(age) or not _INTEGER.fullmatch(incr):
            return None
        a, i = int(age), int(incr)
        if a <= 0 or i <= 0 or a // i > MAX_RANGE:
            raise bad_request(f"Invalid range parameters: age {a}, incr {i}")
        return cls(a, i)

    def timestamps(self, now: float) -> list[int]:
        """The sample times in milliseconds, newest first, on multiples of ``incr``."""
        step = self.incr * 1000
        newest = int(now * 1000) // step * step
        return [newest - n * step for n in range(self.age // self.incr + 1)]


class Sampler:
    """Samples counters periodically; rates from the last two samples, history of the
    changes for :attr:`HISTORY` seconds."""

    INTERVAL = 5.0
    HISTORY = 600.0

    def __init__(
        self, monitor: Monitor, interval: float | None = None, history: float | None = None
    ) -> None:
        self.monitor = monitor
        self.interval = interval if interval is not None else self.INTERVAL
        self.history_span = history if history is not None else self.HISTORY
        # key -> rows of (wall time in ms, *values), one per sample that changed them
        self._changes: dict[Hashable, array[int]] = {}
        self._cutoff = 0
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
            self._remember(key, values)

    def _remember(self, key: Hashable, values: tuple[int, ...]) -> None:
        row = (int(self._wall * 1000), *values)
        changes = self._changes.get(key)
        if changes is None:
            self._changes[key] = array("q", row)
            return
        width = len(row)
        if len(changes) % width:  # the object's shape changed: start again
            changes = self._changes[key] = array("q")
        changes.extend(row)
        # rows older than the history go, but for the last of them (the value then)
        old = 0
        while len(changes) >= (old + 2) * width and changes[(old + 1) * width] <= self._cutoff:
            old += 1
        if old:
            del changes[: old * width]

    def sample(self) -> None:
        """Read every counter once (on the broker's loop)."""
        monitor = self.monitor
        self._at = self._now()
        self._wall = time.time()
        self._cutoff = int((self._wall - self.history_span) * 1000)
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
        by_vhost: dict[str, list[int]] = {}
        for queue in monitor.queue_figures():
            key = ("queue", queue.vhost, queue.name)
            self._record(seen, key, queue.counts)
            messages = queue.ready + queue.unacked
            self._record(seen, ("depth", *key), (messages, queue.ready, queue.unacked))
            queued[0] += messages
            queued[1] += queue.ready
            queued[2] += queue.unacked
            vhost_queued = by_vhost.setdefault(queue.vhost, [0, 0, 0])
            vhost_queued[0] += messages
            vhost_queued[1] += queue.ready
            vhost_queued[2] += queue.unacked
        for vhost, figures in by_vhost.items():
            self._record(seen, ("queue_totals", vhost), tuple(figures))
        for (vhost, name), published in monitor.exchange_counts().items():
            self._record(seen, ("exchange", vhost, name), published)
        self._record(seen, "churn", monitor.broker.churn.values())
        self._record(seen, "overview", overall.values())
        self._record(seen, "queue_totals", tuple(queued))
        self._samples = seen
        self._since = {k: v for k, v in self._since.items() if k in seen}
        if len(self._changes) > len(seen):
            self._changes = {k: v for k, v in self._changes.items() if k in seen}

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

    def history(
        self, key: Hashable, timestamps: Sequence[int], size: int
    ) -> list[tuple[int, ...]]:
        """The values recorded under ``key`` as they were at each of ``timestamps``
        (milliseconds, newest first); zeros before its first sample."""
        changes = self._changes.get(key)
        zero = (0,) * size
        if changes is None or len(changes) % (size + 1):
            return [zero] * len(timestamps)
        width = size + 1
        row = len(changes) // width - 1
        found: list[tuple[int, ...]] = []
        for moment in timestamps:
            while row >= 0 and changes[row * width] > moment:
                row -= 1
            found.append(
                tuple(changes[row * width + 1 : (row + 1) * width]) if row >= 0 else zero
            )
        return found

    def history_rows(self) -> int:
        """How many numbers of history the sampler holds (for measuring it)."""
        return sum(len(v) for v in self._changes.values())

    def history_bytes(self) -> int:
        """The memory the history takes: its arrays and their dictionary."""
        return sys.getsizeof(self._changes) + sum(
            sys.getsizeof(v) for v in self._changes.values()
        )

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


def add_history(
    item: dict[str, Any],
    names: Sequence[str],
    rows: Sequence[Sequence[int]],
    timestamps: Sequence[int],
    rng: Range,
) -> None:
    """Put RabbitMQ's ``samples``, ``avg`` and ``avg_rate`` into ``item``'s
    ``<name>_details`` for each of ``names`` present in it; ``rows`` holds the values
    (in the order of ``names``) at each of ``timestamps`` (newest first)."""
    for index, name in enumerate(names):
        details = item.get(f"{name}_details")
        if details is None or name not in item:
            continue
        column = [row[index] for row in rows]
        details["samples"] = [
            {"sample": value, "timestamp": moment}
            for value, moment in zip(column, timestamps, strict=True)
        ]
        details["avg"] = sum(column) / len(column)
        details["avg_rate"] = (column[0] - column[-1]) / rng.age


def counter_history(rows: Iterable[Sequence[int]]) -> list[tuple[int, ...]]:
    """Rows of the broker's message counters as rows of :data:`_STATS_NAMES`
    (``deliver_get`` added)."""
    found = []
    for row in rows:
        values = _values(tuple(row))
        found.append(tuple(values[n] for n in _STATS_NAMES))
    return found


def summed(histories: Iterable[Sequence[Sequence[int]]], count: int, size: int) -> list[
    tuple[int, ...]
]:
    """The element-wise sum of several objects' histories of ``count`` rows."""
    total = [[0] * size for _ in range(count)]
    for rows in histories:
        for target, row in zip(total, rows, strict=True):
            for i, value in enumerate(row):
                target[i] += value
    return [tuple(t) for t in total]


def object_history(
    item: dict[str, Any],
    sampler: Sampler,
    key: Hashable,
    names: Sequence[str] | None,
    rng: Range | None,
) -> None:
    """The history of the object sampled under ``key`` into ``item``: its figures
    ``names`` in that order, or (None) its message counters into ``item`` as its
    ``message_stats``."""
    if rng is None:
        return
    moments = rng.timestamps(time.time())
    if names is None:
        rows = counter_history(sampler.history(key, moments, len(_NAMES)))
        add_history(item, _STATS_NAMES, rows, moments, rng)
    else:
        add_history(item, names, sampler.history(key, moments, len(names)), moments, rng)


def overview_history(
    body: dict[str, Any], sampler: Sampler, query: Mapping[str, str], vhosts: Iterable[str]
) -> None:
    """``/api/overview``'s history: its ``message_stats`` (``msg_rates_*``), and its
    ``queue_totals`` and ``churn_rates`` (``lengths_*``), of the caller's ``vhosts``."""
    rates, lengths = Range.of(query, "msg_rates"), Range.of(query, "lengths")
    vhosts = list(vhosts)
    now = time.time()
    if rates is not None:
        moments = rates.timestamps(now)
        rows = summed(
            (counter_history(sampler.history(("vhost", v), moments, len(_NAMES)))
             for v in vhosts),
            len(moments), len(_STATS_NAMES),
        )
        add_history(body["message_stats"], _STATS_NAMES, rows, moments, rates)
    if lengths is not None:
        moments = lengths.timestamps(now)
        depth = ("messages", "messages_ready", "messages_unacknowledged")
        rows = summed(
            (sampler.history(("queue_totals", v), moments, 3) for v in vhosts),
            len(moments), 3,
        )
        add_history(body["queue_totals"], depth, rows, moments, lengths)
        churn = [k for k in body["churn_rates"] if not k.endswith("_details")]
        object_history(body["churn_rates"], sampler, "churn", churn, lengths)
