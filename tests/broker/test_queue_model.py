"""A broker queue against a model of it, driven by hypothesis (a rule-based state machine).

One connection to a real broker, three channels: P publishes (mandatory or not,
persistent or not, in a transaction or not), C consumes with a prefetch limit, G takes
messages with basic.get (and settles in a transaction or not). Rules ack, nack and
reject (one or several, requeued or not), cancel the consumer, close channels (which
requeues their unacknowledged messages), purge the queue. The model says which message
comes next, with which redelivered flag, and how many are ready; after every rule the
broker's deliveries, replies and queue.declare-ok counts must match it, and the consumer
never holds more unacknowledged messages than its prefetch (which counts per consumer:
one consuming again after basic.cancel starts with room).

The model of the order: a requeued message goes back to its original position (as in
RabbitMQ), so the ready messages are always in publish order; a consumer with room takes
ready messages from the head at once.

``KILTMQ_QUEUE_MODEL_EXAMPLES`` sets how many sequences to try (default 20).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import deque
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.protocol import spec
from kiltmq.protocol.connection import ContentReceived, Event, MethodReceived

pytestmark = pytest.mark.timeout(300)

T = TypeVar("T")
P, C, G = 1, 2, 3
TIMEOUT = 5.0
_names = itertools.count()


class Driver:
    """The raw client on a private event loop, with the events sorted by channel."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.client: RawClient = self.run(RawClient.connect(port))
        self.inbox: dict[int, deque[Event]] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def next(self, channel: int) -> Event:
        """The next event on ``channel``."""

        async def wait() -> Event:
            box = self.inbox.setdefault(channel, deque())
            while not box:
                event = await self.client.event(TIMEOUT)
                self.inbox.setdefault(getattr(event, "channel", 0), deque()).append(event)
            return box.popleft()

        return self.run(wait())

    def waiting(self, channel: int) -> list[Event]:
        return list(self.inbox.get(channel, ()))

    def call(self, channel: int, method: spec.Method) -> spec.Method:
        self.client.send(channel, method)
        event = self.next(channel)
        assert isinstance(event, MethodReceived | ContentReceived), event
        return event.method

    def close(self) -> None:
        self.client.abort()
        self.loop.close()


class QueueModel(RuleBasedStateMachine):
    port: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.d = Driver(self.port)
        self.queue = f"model-{next(_names)}"
        self.ids = itertools.count(1)
        self.ready: list[int] = []  # message ids, always in publish order
        self.delivered: set[int] = set()  # ids delivered at least once
        self.unacked: dict[int, dict[int, int]] = {C: {}, G: {}}  # channel: tag -> id
        self.next_tag = {C: 1, G: 1}
        self.owner: dict[int, str] = {}  # delivery tag on C -> consumer tag
        self.prefetch = 0
        self.consumer: str | None = None
        self.consumers = itertools.count(1)
        self.tx_publishes: list[int] | None = None  # None: P not in a transaction
        # G in a transaction: settlements to apply at commit, as (kind, {tag: id}, requeue)
        self.tx_settles: list[tuple[str, dict[int, int], bool]] | None = None

    @initialize()
    def open(self) -> None:
        for channel in (P, C, G):
            self.d.run(self.d.client.open_channel(channel))
        ok = self.d.call(P, spec.QueueDeclare(self.queue, auto_delete=False))
        assert isinstance(ok, spec.QueueDeclareOk)

    def teardown(self) -> None:
        self.d.close()

    # -- the model's dispatch -------------------------------------------------------------

    def _expect_deliveries(self) -> None:
        """A consumer with room takes ready messages from the head: read them from C."""
        while self.consumer and self.ready and self._room():
            message = self.ready.pop(0)
            event = self.d.next(C)
            assert isinstance(event, ContentReceived), event
            deliver = event.method
            assert isinstance(deliver, spec.BasicDeliver), deliver
            assert event.body == b"m%d" % message, (event.body, message)
            assert deliver.redelivered == (message in self.delivered)
            assert deliver.delivery_tag == self.next_tag[C]
            assert deliver.consumer_tag == self.consumer
            self.owner[deliver.delivery_tag] = self.consumer
            self._delivered(C, message)
            assert self._held() <= self.prefetch or not self.prefetch

    def _held(self) -> int:
        """Unacknowledged deliveries of the current consumer: prefetch (global=false)
        counts per consumer, so a new one starts with room, as in RabbitMQ."""
        return sum(1 for t in self.unacked[C] if self.owner.get(t) == self.consumer)

    def _room(self) -> bool:
        return not self.prefetch or self._held() < self.prefetch

    def _delivered(self, channel: int, message: int) -> None:
        self.unacked[channel][self.next_tag[channel]] = message
        self.next_tag[channel] += 1
        self.delivered.add(message)

    def _requeue(self, messages: list[int]) -> None:
        self.ready = sorted(self.ready + messages)

    def _settle(self, channel: int, kind: str, tag: int, multiple: bool, requeue: bool) -> None:
        """As RabbitMQ: the tags leave the unacknowledged ones at once; in a transaction
        what happens to their messages waits for the commit (a rollback restores them)."""
        unacked = self.unacked[channel]
        tags = [t for t in unacked if t <= tag] if multiple else [tag]
        settled = {t: unacked.pop(t) for t in tags}
        if channel == G and self.tx_settles is not None:
            self.tx_settles.append((kind, settled, requeue))
        elif kind != "ack" and requeue:
            self._requeue(list(settled.values()))

    @invariant()
    def counts_match(self) -> None:
        if not hasattr(self, "d") or self.d.client.error is not None:
            return
        self._expect_deliveries()
        ok = self.d.call(P, spec.QueueDeclare(self.queue, passive=True))
        assert isinstance(ok, spec.QueueDeclareOk), ok
        assert ok.message_count == len(self.ready)
        assert ok.consumer_count == (1 if self.consumer else 0)
        assert self.d.waiting(C) == []  # no delivery the model did not expect

    # -- publishing ----------------------------------------------------------------------

    @rule(mandatory=st.booleans(), persistent=st.booleans(), routed=st.booleans())
    def publish(self, mandatory: bool, persistent: bool, routed: bool) -> None:
        if self.tx_publishes is not None:
            routed = True  # returns of a transaction come at commit; kept out of the model
        message = next(self.ids)
        props = spec.BasicProperties(delivery_mode=2 if persistent else 1)
        key = self.queue if routed else "model-nowhere"
        self.d.client.publish(P, "", key, b"m%d" % message, props, mandatory=mandatory)
        if not routed:
            if mandatory:
                event = self.d.next(P)
                assert isinstance(event, ContentReceived), event
                assert isinstance(event.method, spec.BasicReturn)
                assert (event.method.reply_code, event.body) == (312, b"m%d" % message)
            return
        if self.tx_publishes is not None:
            self.tx_publishes.append(message)
        else:
            self.ready.append(message)

    @rule(n=st.integers(2, 6), persistent=st.booleans())
    def publish_several(self, n: int, persistent: bool) -> None:
        for _ in range(n):
            self.publish(mandatory=True, persistent=persistent, routed=True)

    @rule()
    def publish_transaction(self) -> None:
        if self.tx_publishes is None:
            assert isinstance(self.d.call(P, spec.TxSelect()), spec.TxSelectOk)
            self.tx_publishes = []

    @precondition(lambda self: self.tx_publishes is not None)
    @rule(commit=st.booleans())
    def publish_commit_or_rollback(self, commit: bool) -> None:
        assert self.tx_publishes is not None
        if commit:
            assert isinstance(self.d.call(P, spec.TxCommit()), spec.TxCommitOk)
            self.ready += self.tx_publishes
        else:
            assert isinstance(self.d.call(P, spec.TxRollback()), spec.TxRollbackOk)
        self.tx_publishes = []

    @rule()
    def purge(self) -> None:
        ok = self.d.call(P, spec.QueuePurge(self.queue))
        assert isinstance(ok, spec.QueuePurgeOk)
        assert ok.message_count == len(self.ready)
        self.ready = []

    # -- basic.get -----------------------------------------------------------------------

    @rule(no_ack=st.booleans())
    def get(self, no_ack: bool) -> None:
        self.d.client.send(G, spec.BasicGet(self.queue, no_ack=no_ack))
        event = self.d.next(G)
        if not self.ready:
            assert isinstance(event, MethodReceived), event
            assert isinstance(event.method, spec.BasicGetEmpty)
            return
        message = self.ready.pop(0)
        assert isinstance(event, ContentReceived), event
        get_ok = event.method
        assert isinstance(get_ok, spec.BasicGetOk), get_ok
        assert event.body == b"m%d" % message, (event.body, message)
        assert get_ok.redelivered == (message in self.delivered)
        assert get_ok.delivery_tag == self.next_tag[G]
        assert get_ok.message_count == len(self.ready)
        self._delivered(G, message)
        if no_ack:
            del self.unacked[G][get_ok.delivery_tag]

    # -- consuming -----------------------------------------------------------------------

    @precondition(lambda self: self.consumer is None)
    @rule(prefetch=st.integers(0, 3))
    def consume(self, prefetch: int) -> None:
        if prefetch != self.prefetch:
            assert isinstance(self.d.call(C, spec.BasicQos(0, prefetch, False)), spec.BasicQosOk)
            self.prefetch = prefetch
        tag = f"ctag-{next(self.consumers)}"
        ok = self.d.call(C, spec.BasicConsume(self.queue, tag))
        assert isinstance(ok, spec.BasicConsumeOk)
        self.consumer = tag

    @precondition(lambda self: self.consumer is not None)
    @rule()
    def cancel(self) -> None:
        assert self.consumer is not None
        ok = self.d.call(C, spec.BasicCancel(self.consumer))
        assert isinstance(ok, spec.BasicCancelOk)
        self.consumer = None

    # -- settling ------------------------------------------------------------------------

    @precondition(lambda self: self.unacked[C] or self.unacked[G])
    @rule(
        data=st.data(),
        kind=st.sampled_from(["ack", "nack", "reject"]),
        multiple=st.booleans(),
        requeue=st.booleans(),
    )
    def settle(self, data: st.DataObject, kind: str, multiple: bool, requeue: bool) -> None:
        channel = data.draw(st.sampled_from([ch for ch in (C, G) if self.unacked[ch]]))
        tag = data.draw(st.sampled_from(sorted(self.unacked[channel])))
        if kind == "reject":
            multiple = False
        if kind == "ack":
            method: spec.Method = spec.BasicAck(tag, multiple)
        elif kind == "nack":
            method = spec.BasicNack(tag, multiple, requeue)
        else:
            method = spec.BasicReject(tag, requeue)
        self.d.client.send(channel, method)
        self._settle(channel, kind, tag, multiple, requeue)

    @rule()
    def settle_transaction(self) -> None:
        if self.tx_settles is None:
            assert isinstance(self.d.call(G, spec.TxSelect()), spec.TxSelectOk)
            self.tx_settles = []

    @precondition(lambda self: self.tx_settles is not None)
    @rule(commit=st.booleans())
    def settle_commit_or_rollback(self, commit: bool) -> None:
        assert self.tx_settles is not None
        if commit:
            assert isinstance(self.d.call(G, spec.TxCommit()), spec.TxCommitOk)
            for kind, settled, requeue in self.tx_settles:
                if kind != "ack" and requeue:
                    self._requeue(list(settled.values()))
        else:
            assert isinstance(self.d.call(G, spec.TxRollback()), spec.TxRollbackOk)
            for _, settled, _ in self.tx_settles:
                self.unacked[G].update(settled)
        self.tx_settles = []

    @rule(channel=st.sampled_from([C, G]))
    def close_channel(self, channel: int) -> None:
        ok = self.d.call(channel, spec.ChannelClose(200, "bye", 0, 0))
        assert isinstance(ok, spec.ChannelCloseOk)
        if channel == G and self.tx_settles:  # an open transaction is rolled back
            for _, settled, _ in self.tx_settles:
                self.unacked[G].update(settled)
        self._requeue(list(self.unacked[channel].values()))
        self.unacked[channel] = {}
        self.next_tag[channel] = 1
        if channel == C:
            self.owner = {}
            self.consumer = None
            self.prefetch = 0
        else:
            self.tx_settles = None
        self.d.run(self.d.client.open_channel(channel))


@pytest.fixture(scope="module")
def model_broker() -> Iterator[Broker]:
    with Broker(port=0) as running:
        yield running


def test_queue_matches_its_model(model_broker: Broker) -> None:
    QueueModel.port = model_broker.port
    run_state_machine_as_test(
        QueueModel,
        settings=settings(
            max_examples=int(os.environ.get("KILTMQ_QUEUE_MODEL_EXAMPLES", "20")),
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
