"""Consumers, prefetch (basic.qos), deliveries and basic.get.

A queue asks :meth:`Consuming.can_deliver` before it hands an entry to
:meth:`Consuming.deliver`, which encodes basic.deliver + header + body straight into the
connection's output buffer; the connection writes its buffer once per loop iteration.
"""

from __future__ import annotations

import struct

from kiltmq.broker.channel.reply_to import DirectReplyTo
from kiltmq.broker.channel.state import DELIVER_IDS, pack_QB
from kiltmq.broker.queue import Consumer, Entry
from kiltmq.broker.reply_target import REPLY_TO
from kiltmq.protocol import spec
from kiltmq.protocol.codec import encode_shortstr
from kiltmq.protocol.errors import AccessRefused, AMQPNotImplemented, PreconditionFailed
from kiltmq.protocol.frames import FRAME_END_OCTET, FRAME_HEAD

__all__ = ["Consuming"]

_pack_frame = FRAME_HEAD.pack
# The end of the previous frame, then a content-header frame's head and the fixed fields
# of its payload (class, weight, body size); the end of that frame and a body frame's head.
_pack_header_head = struct.Struct(">BBHIHHQ").pack
_pack_body_head = struct.Struct(">BBHI").pack
_END = FRAME_END_OCTET
_join = b"".join
_GET_OK_IDS = struct.pack(">HH", 60, 71)
# Bodies up to this size are joined with their delivery's frames; larger ones are queued
# as they are, so the batch's join is their only copy. (frame_max is at least 4096, so
# bodies this size always fit one frame.)
_JOINED_BODY_MAX = 2048


class Consuming(DirectReplyTo):
    """basic.qos, basic.consume, basic.cancel, basic.get, and deliveries to consumers."""

    __slots__ = ()

    def can_deliver(self, consumer: Consumer) -> bool:
        out = self.out
        if not out.can_send:
            out.starved = True
            return False
        prefetch = consumer.prefetch
        if prefetch and consumer.unacked >= prefetch:
            return False
        return not (self.prefetch_global and self.consumer_unacked >= self.prefetch_global)

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        self.delivery_tag = tag = self.delivery_tag + 1
        message = entry.message
        body = message.body
        size = len(body)
        if 0 < size <= self.body_max and entry.header is None:
            # basic.deliver, content header and body frames written field by field: the
            # frame heads, ends and content-header fields packed together, nothing per
            # message built in advance
            number = self.number
            prefix = consumer.deliver_prefix
            tail = message.deliver_tail
            raw = message.raw_properties
            parts = [
                _pack_frame(1, number, len(prefix) + 9 + len(tail)),
                prefix,
                pack_QB(tag, entry.redelivered),
                tail,
                _pack_header_head(0xCE, 2, number, 12 + len(raw), 60, 0, size),
                raw,
                _pack_body_head(0xCE, 3, number, size),
            ]
            if size <= _JOINED_BODY_MAX:
                parts += (body, _END)
                self.out.send_delivery(_join(parts))
            else:  # a large body: queued as it is, not copied into a join of its own
                self.out.send_delivery(_join(parts), body)
        else:  # no body, a body over frame_max, or a quorum queue's x-delivery-count
            payload = (
                consumer.deliver_prefix + pack_QB(tag, entry.redelivered) + message.deliver_tail
            )
            self.out.send_delivery(self._content(payload, message, entry.header))
        if entry.redelivered:
            self.redelivered += 1
            consumer.queue.redelivered += 1
        if consumer.no_ack:
            queue = consumer.queue
            queue.no_ack_delivered += 1
            self.no_ack_delivered += 1
            queue.ack(entry)
        else:
            self.unacked[tag] = (consumer.queue, entry, consumer)
            self.unacked_bytes += size
            consumer.unacked += 1
            self.consumer_unacked += 1

    def consumer_cancelled(self, consumer: Consumer) -> None:
        """The queue went away under ``consumer``: tell the client if it asked to know."""
        if self.consumers.get(consumer.tag) is consumer:
            del self.consumers[consumer.tag]
            if self.session.cancel_notify and not self.closed:
                self.send(spec.BasicCancel(consumer.tag, True))

    def basic_qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise AMQPNotImplemented(
                f"NOT_IMPLEMENTED - prefetch_size!=0 ({m.prefetch_size})", 60, 10
            )
        if m.global_:
            self.prefetch_global = m.prefetch_count
        else:
            self.prefetch = m.prefetch_count
        self.send(spec.BasicQosOk())
        if m.global_:
            self._drain_consumers()

    def _drain_consumers(self) -> None:
        for queue in {c.queue for c in self.consumers.values()}:
            queue.drain()

    def basic_consume(self, m: spec.BasicConsume) -> None:
        if m.queue == REPLY_TO:
            self._consume_replies(m)
            return
        name = self._queue_name(m.queue)
        self._check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.session)
        tag = self._consumer_tag(m.consumer_tag)
        queue.check_consumer(
            m.no_ack,
            0 if m.no_ack else self.prefetch,
            self.prefetch_global,
            m.arguments,
            self.vhost.describe("queue", name),
        )
        if queue.exclusive_consumer is not None or (m.exclusive and queue.consumers):
            raise AccessRefused(
                f"ACCESS_REFUSED - {self.vhost.describe('queue', name)} in exclusive use"
            )
        priority = (m.arguments or {}).get("x-priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            kind = "longstr" if isinstance(priority, str | bytes) else type(priority).__name__
            raise PreconditionFailed(
                f"PRECONDITION_FAILED - invalid arg 'x-priority' for "
                f'{self.vhost.describe("queue", name)}: "expected integer, got {kind}"'
            )
        consumer = Consumer(
            tag,
            queue,
            self,
            priority=priority,
            no_ack=m.no_ack,
            exclusive=m.exclusive,
            prefetch=0 if m.no_ack else self.prefetch,
            arguments=m.arguments,
            deliver_prefix=DELIVER_IDS + encode_shortstr(tag),
        )
        self.consumers[tag] = consumer
        if not m.no_wait:
            self.send(spec.BasicConsumeOk(tag))
        queue.add_consumer(consumer)

    def basic_cancel(self, m: spec.BasicCancel) -> None:
        if m.consumer_tag == self.reply_tag:
            self._stop_replies()
        consumer = self.consumers.pop(m.consumer_tag, None)
        if not m.no_wait:
            self.send(spec.BasicCancelOk(m.consumer_tag))
        if consumer is not None:
            consumer.queue.remove_consumer(consumer)

    def basic_get(self, m: spec.BasicGet) -> None:
        name = self._queue_name(m.queue)
        self._check("read", "queue", name)
        queue = self.vhost.get_queue(name, self.session)
        entry = queue.get()
        if entry is None:
            self.got_empty += 1
            self.send(spec.BasicGetEmpty())
            return
        self.got += 1
        if entry.redelivered:
            self.redelivered += 1
            queue.redelivered += 1
        self.delivery_tag = tag = self.delivery_tag + 1
        message = entry.message
        if self._acks or self._nacks:
            self.flush_confirms()
        payload = (
            _GET_OK_IDS
            + pack_QB(tag, entry.redelivered)
            + message.deliver_tail
            + struct.pack(">I", len(queue.ready))
        )
        self.out.send_raw(self._content(payload, message, entry.header))
        if m.no_ack:
            self.no_ack_got += 1
            queue.no_ack_got += 1
            queue.ack(entry)
        else:
            self.unacked[tag] = (queue, entry, None)
            self.unacked_bytes += message.size
