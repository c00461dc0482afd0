"""Settling deliveries: basic.ack, basic.nack, basic.reject and basic.recover. A settled
consumer delivery frees prefetch credit, so the queues involved drain again. In a
transaction, settlements wait for tx.commit."""

from __future__ import annotations

from collections.abc import Iterable

from kiltmq.broker.channel.consuming import Consuming
from kiltmq.broker.channel.state import Unacked
from kiltmq.broker.queue import Entry, Queue
from kiltmq.protocol import spec
from kiltmq.protocol.errors import AMQPNotImplemented, PreconditionFailed

__all__ = ["Settlement", "requeue"]


def requeue(records: Iterable[tuple[int, Unacked]], released: bool = False) -> None:
    """Put the entries of ``records`` back into their queues, one call per queue:
    requeued by the client, or ``released`` by a channel that closed."""
    by_queue: dict[Queue, list[Entry]] = {}
    for _tag, (queue, entry, _consumer) in records:
        by_queue.setdefault(queue, []).append(entry)
    for queue, entries in by_queue.items():
        if released:
            queue.release(entries)
        else:
            queue.requeue(entries)


class Settlement(Consuming):
    """Acknowledgements, rejections and recovery of unacked deliveries."""

    __slots__ = ()

    def _collect(self, tag: int, multiple: bool) -> list[tuple[int, Unacked]]:
        unacked = self.unacked
        if multiple:
            if tag == 0:
                records = list(unacked.items())
                unacked.clear()
                return records
            if tag not in unacked:
                raise PreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
            tags = []
            for t in unacked:
                if t > tag:
                    break
                tags.append(t)
            return [(t, unacked.pop(t)) for t in tags]
        record = unacked.pop(tag, None)
        if record is None:
            raise PreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
        return [(tag, record)]

    def basic_ack(self, m: spec.BasicAck) -> None:
        unacked = self.unacked
        tag = m.delivery_tag
        if self.tx is None and (
            not m.multiple or (tag and unacked and next(iter(unacked)) == tag)
        ):
            # the common case, kept short: one delivery (a multiple ack of the oldest
            # unacked one, as clients that ack each delivery in turn send, is that too)
            record = unacked.pop(tag, None)
            if record is None:
                raise PreconditionFailed(f"PRECONDITION_FAILED - unknown delivery tag {tag}")
            self.acked += 1
            queue, entry, consumer = record
            queue.ack(entry)
            self.unacked_bytes -= entry.message.size
            if consumer is not None:
                consumer.unacked -= 1
                self.consumer_unacked -= 1
                if self.prefetch_global:
                    # the freed credit is the channel's: any of its queues may use it
                    self._drain_consumers()
                elif queue.ready:
                    queue.drain()
            return
        records = self._collect(m.delivery_tag, m.multiple)
        if self.tx is not None:
            self.tx.settles.append(("ack", records))
            return
        self._settle(records, "ack")

    def basic_nack(self, m: spec.BasicNack) -> None:
        records = self._collect(m.delivery_tag, m.multiple)
        self._reject(records, m.requeue)

    def basic_reject(self, m: spec.BasicReject) -> None:
        records = self._collect(m.delivery_tag, False)
        self._reject(records, m.requeue)

    def _reject(self, records: list[tuple[int, Unacked]], requeue: bool) -> None:
        kind = "requeue" if requeue else "discard"
        if self.tx is not None:
            self.tx.settles.append((kind, records))
            return
        self._settle(records, kind)

    def _settle(self, records: list[tuple[int, Unacked]], kind: str) -> None:
        """Ack, requeue or discard (dead-letter) settled deliveries."""
        touched: dict[Queue, None] = {}
        size = 0
        for _tag, (queue, entry, consumer) in records:
            size += entry.message.size
            if consumer is not None:
                consumer.unacked -= 1
                self.consumer_unacked -= 1
            if kind == "ack":
                queue.ack(entry)
            elif kind == "discard":
                queue.reject(entry, False)
            touched[queue] = None
        self.unacked_bytes -= size
        if kind == "ack":
            self.acked += len(records)
        elif kind == "requeue":
            requeue(records)
        if self.prefetch_global:
            self._drain_consumers()
        else:
            for queue in touched:
                queue.drain()

    def basic_recover_async(self, m: spec.BasicRecoverAsync) -> None:
        if not m.requeue:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - requeue=false", 60, 100)
        self._requeue_all()

    def basic_recover(self, m: spec.BasicRecover) -> None:
        if not m.requeue:
            raise AMQPNotImplemented("NOT_IMPLEMENTED - requeue=false", 60, 110)
        self._requeue_all()
        self.send(spec.BasicRecoverOk())

    def _requeue_all(self) -> None:
        records = list(self.unacked.items())
        self.unacked.clear()
        if records:
            self._settle(records, "requeue")
