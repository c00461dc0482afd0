"""Prometheus metrics as RabbitMQ's ``rabbitmq_prometheus`` plugin names them:
``/metrics`` (aggregated: the node's object counts, queue depths, message counters,
memory, file descriptors, alarms) and ``/metrics/per-object`` (the same plus one series
per queue, labelled ``vhost`` and ``queue``). No authentication, as RabbitMQ's. The
message counters are the channels' (see :mod:`kiltmq.management.stats`)."""

from __future__ import annotations

import os
import resource
import shutil
import socket
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from kiltmq.broker.admin import Admin, ManagedBroker
from kiltmq.broker.churn import Churn
from kiltmq.broker.disk import DEFAULT_DISK_FREE_LIMIT
from kiltmq.broker.monitor import ChannelDetail, ConnectionDetail, Monitor, QueueFigures
from kiltmq.management.overview import API_VERSION
from kiltmq.management.site import HttpService
from kiltmq.management.stats import Sampler
from kiltmq.version import __version__

__all__ = ["PrometheusServer", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4"
AMQP = (("protocol", "amqp091"),)
CLASSIC = (*AMQP, ("queue_type", "rabbit_classic_queue"))

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if type(value) is int:
        return str(value)
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(labels: Labels) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, text: str, series: Iterable[tuple[Labels, float]]
    ) -> None:
        self.shown(name, kind, text, ((_labels(labels), value) for labels, value in series))

    def shown(self, name: str, kind: str, text: str, series: Iterable[tuple[str, float]]) -> None:
        """A metric whose series' labels are written already (see :func:`_labels`)."""
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.append(f"# HELP {name} {text}")
        for shown, value in series:
            self.lines.append(f"{name}{{{shown}}} {_number(value)}" if shown else
                              f"{name} {_number(value)}")

    def one(self, name: str, kind: str, text: str, value: float, labels: Labels = ()) -> None:
        self.metric(name, kind, text, [(labels, value)])


class Metrics:
    """What the metrics are read from."""

    def __init__(self, broker: ManagedBroker, node: str, cluster: str) -> None:
        self.broker = broker
        self.admin = Admin(broker)
        self.monitor = Monitor(broker, self.admin)
        self.sampler = Sampler(self.monitor)
        self.node = node
        self.cluster = cluster


PROMETHEUS = web.AppKey("kiltmq.management.prometheus", Metrics)


QueueValue = Callable[[QueueFigures], int]

#: Queue depths: summed in /metrics, per queue in /metrics/per-object.
DEPTH: tuple[tuple[str, str, QueueValue], ...] = (
    ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers",
     lambda q: q.ready),
    ("rabbitmq_queue_messages_unacked",
     "Messages delivered to consumers but not yet acknowledged", lambda q: q.unacked),
    ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth",
     lambda q: q.messages),
)
PER_QUEUE: tuple[tuple[str, str, QueueValue], ...] = (
    ("rabbitmq_queue_consumers", "Consumers on a queue", lambda q: q.consumers),
    ("rabbitmq_queue_messages_ready_bytes", "Size in bytes of ready messages",
     lambda q: q.ready_bytes),
    ("rabbitmq_queue_messages_unacked_bytes", "Size in bytes of all unacknowledged messages",
     lambda q: q.unacked_bytes),
)


#: Churn counters (:class:`~kiltmq.broker.churn.Churn` fields) under RabbitMQ's names.
CHURN = (
    ("connections_opened", "connection_created", "Total number of connections opened"),
    ("connections_closed", "connection_closed", "Total number of connections closed or "
     "terminated"),
    ("channels_opened", "channel_created", "Total number of channels opened"),
    ("channels_closed", "channel_closed", "Total number of channels closed"),
    ("queues_declared", "queue_declared", "Total number of queues declared"),
    ("queues_created", "queue_created", "Total number of queues created"),
    ("queues_deleted", "queue_deleted", "Total number of queues deleted"),
)
#: Dead-lettering reasons the broker counts (classic queues: ``at_most_once`` when the
#: queue has a dead-letter exchange, ``disabled`` when the message is dropped).
DEAD_LETTERED = (
    ("expired", "Total number of messages dead-lettered due to message TTL exceeded"),
    ("maxlen", "Total number of messages dead-lettered due to overflow drop-head or "
     "reject-publish-dlx"),
    ("rejected", "Total number of messages dead-lettered due to basic.reject or basic.nack"),
)


ChannelValue = Callable[[ChannelDetail], int]

#: Channel figures (RabbitMQ's ``channel_metrics``, ``channel_exchange_metrics`` and
#: ``channel_queue_metrics``): summed over the open channels in /metrics, one series per
#: channel in /metrics/per-object. RabbitMQ splits the ``channel_queue`` ones by queue as
#: well; kiltmq's channels count them for all their queues together.
CHANNEL_GAUGES: tuple[tuple[str, str, ChannelValue], ...] = (
    ("consumers", "Consumers on a channel", lambda c: c.consumers),
    ("messages_unacked", "Delivered but not yet acknowledged messages", lambda c: c.unacked),
    ("messages_unconfirmed", "Published but not yet confirmed messages",
     lambda c: c.unconfirmed),
    ("messages_uncommitted", "Messages received in a transaction but not yet committed",
     lambda c: c.uncommitted_messages),
    ("acks_uncommitted", "Message acknowledgements in a transaction not yet committed",
     lambda c: c.uncommitted_acks),
    ("prefetch", "Total limit of unacknowledged messages for all consumers on a channel",
     lambda c: c.global_prefetch_count),
)
CHANNEL_COUNTERS: tuple[tuple[str, str, ChannelValue], ...] = (
    ("messages_published", "Total number of messages published into an exchange on a "
     "channel", lambda c: c.counts.publish),
    ("messages_confirmed", "Total number of messages published into an exchange and "
     "confirmed on the channel", lambda c: c.counts.confirm),
    ("messages_unroutable_returned", "Total number of messages published as mandatory into "
     "an exchange and returned to the publisher as unroutable",
     lambda c: c.counts.return_unroutable),
    ("messages_unroutable_dropped", "Total number of messages published as non-mandatory "
     "into an exchange and dropped as unroutable", lambda c: c.counts.drop_unroutable),
)
CHANNEL_QUEUE_COUNTERS: tuple[tuple[str, str, ChannelValue], ...] = (
    ("get_ack", "Total number of messages fetched with basic.get in manual acknowledgement "
     "mode", lambda c: c.counts.get),
    ("get", "Total number of messages fetched with basic.get in automatic acknowledgement "
     "mode", lambda c: c.counts.get_no_ack),
    ("messages_delivered_ack", "Total number of messages delivered to consumers in manual "
     "acknowledgement mode", lambda c: c.counts.deliver),
    ("messages_delivered", "Total number of messages delivered to consumers in automatic "
     "acknowledgement mode", lambda c: c.counts.deliver_no_ack),
    ("messages_redelivered", "Total number of messages redelivered to consumers",
     lambda c: c.counts.redeliver),
    ("messages_acked", "Total number of messages acknowledged by consumers",
     lambda c: c.counts.ack),
    ("get_empty", "Total number of times basic.get operations fetched no message",
     lambda c: c.counts.get_empty),
)
ConnectionValue = Callable[[ConnectionDetail], int]
#: Connection figures, summed or (labelled ``channel`` with the connection's name, as
#: RabbitMQ labels them with the connection's process) per connection.
CONNECTION_FIGURES: tuple[tuple[str, str, str, ConnectionValue], ...] = (
    ("incoming_bytes_total", "counter", "Total number of bytes received on a connection",
     lambda c: c.recv_oct),
    ("outgoing_bytes_total", "counter", "Total number of bytes sent on a connection",
     lambda c: c.send_oct),
    ("incoming_packets_total", "counter", "Total number of packets received on a "
     "connection", lambda c: c.recv_cnt),
    ("outgoing_packets_total", "counter", "Total number of packets sent on a connection",
     lambda c: c.send_cnt),
    ("channels", "gauge", "Channels on a connection", lambda c: c.channels),
)


def _objects(
    w: _Writer, per_object: bool, name: str, kind: str, text: str,
    labelled: list[tuple[Labels, Any]], get: Callable[[Any], int],
) -> None:
    """One figure of channels, connections or queues: summed, or one series each."""
    if per_object:
        w.metric(name, kind, text, [(labels, get(item)) for labels, item in labelled])
    else:
        w.one(name, kind, text, sum(get(item) for _labels, item in labelled))


def _channels_and_connections(
    w: _Writer, metrics: Metrics, per_object: bool, channels: list[ChannelDetail],
    queues: list[QueueFigures],
) -> None:
    by_channel: list[tuple[Labels, Any]] = [((("channel", c.name),), c) for c in channels]
    for name, text, get in CHANNEL_GAUGES:
        _objects(w, per_object, f"rabbitmq_channel_{name}", "gauge", text, by_channel, get)
    for name, text, get in CHANNEL_COUNTERS:
        _objects(w, per_object, f"rabbitmq_channel_{name}_total", "counter", text,
                 by_channel, get)
    by_channel_vhost: list[tuple[Labels, Any]] = [
        ((("channel", c.name), ("vhost", c.connection.vhost)), c) for c in channels
    ]
    for name, text, get in CHANNEL_QUEUE_COUNTERS:
        _objects(w, per_object, f"rabbitmq_channel_{name}_total", "counter", text,
                 by_channel_vhost, get)
    by_connection: list[tuple[Labels, Any]] = [
        ((("channel", c.name),), c) for c in metrics.monitor.connections()
    ]
    for name, kind, text, getc in CONNECTION_FIGURES:
        _objects(w, per_object, f"rabbitmq_connection_{name}", kind, text, by_connection,
                 getc)
    by_queue: list[tuple[Labels, Any]] = [
        ((("vhost", q.vhost), ("queue", q.name)), q) for q in queues
    ]
    _objects(w, per_object, "rabbitmq_queue_messages_published_total", "counter",
             "Total number of messages published to queues", by_queue,
             lambda q: q.counts[0])


def _churn(w: _Writer, churn: Churn) -> None:
    for name, field, text in CHURN:
        w.one(f"rabbitmq_{name}_total", "counter", text, getattr(churn, field))


def render(metrics: Metrics, *, per_object: bool = False) -> str:
    """The exposition text."""
    monitor, sampler = metrics.monitor, metrics.sampler
    status = metrics.admin.status()
    queues = monitor.queue_figures()
    channels = monitor.channels()
    totals = sampler.totals()
    w = _Writer()
    w.one("rabbitmq_identity_info", "untyped", "RabbitMQ node & cluster identity info", 1,
          (("rabbitmq_node", metrics.node), ("rabbitmq_cluster", metrics.cluster),
           ("rabbitmq_cluster_permanent_id", metrics.cluster)))
    w.one("rabbitmq_build_info", "untyped", "RabbitMQ & Erlang/OTP version info", 1,
          (("rabbitmq_version", API_VERSION), ("prometheus_plugin_version", API_VERSION),
           ("kiltmq_version", __version__)))
    w.one("rabbitmq_connections", "gauge", "Connections currently open", status.connections)
    w.one("rabbitmq_channels", "gauge", "Channels currently open", len(channels))
    consumers = sum(q.consumers for q in queues)
    w.one("rabbitmq_consumers", "gauge", "Consumers currently connected", consumers)
    w.one("rabbitmq_queues", "gauge", "Queues available", len(queues))
    for name, text, get in DEPTH:
        w.one(name, "gauge", text, sum(get(q) for q in queues))
    w.one("rabbitmq_process_resident_memory_bytes", "gauge", "Memory used in bytes",
          status.process_memory or 0)
    w.one("rabbitmq_resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes",
          status.memory_limit or 0)
    if not per_object:  # as RabbitMQ, which leaves the alarms out of /metrics/per-object
        w.one("rabbitmq_alarms_file_descriptor_limit", "untyped",
              "is 1 if file descriptor limit alarm is in effect",
              int("file_descriptor_limit" in status.alarms))
        w.one("rabbitmq_alarms_free_disk_space_watermark", "untyped",
              "is 1 if free disk space watermark alarm is in effect",
              int("disk" in status.alarms))
        w.one("rabbitmq_alarms_memory_used_watermark", "untyped",
              "is 1 if VM memory watermark alarm is in effect", int(status.memory_alarm))
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    w.one("rabbitmq_process_open_fds", "gauge", "Open file descriptors", fds)
    # the client connections' sockets, and their limit as /api/nodes shows them
    # (sockets_used, sockets_total)
    w.one("rabbitmq_process_open_tcp_sockets", "gauge", "Open TCP sockets", status.connections)
    try:
        free = shutil.disk_usage(status.data_dir or os.getcwd()).free
    except OSError:
        free = 0
    w.one("rabbitmq_disk_space_available_bytes", "gauge", "Disk space available in bytes", free)
    w.one("rabbitmq_process_max_fds", "gauge", "Open file descriptors limit", fd_limit)
    w.one("rabbitmq_process_max_tcp_sockets", "gauge", "Open TCP sockets limit", fd_limit)
    w.one("rabbitmq_disk_space_available_limit_bytes", "gauge",
          "Free disk space low watermark in bytes",
          status.disk_free_limit or DEFAULT_DISK_FREE_LIMIT)
    _channels_and_connections(w, metrics, per_object, channels, queues)
    w.one("rabbitmq_erlang_uptime_seconds", "gauge", "Node uptime", round(status.uptime, 3))
    w.one("rabbitmq_global_consumers", "gauge", "Current number of consumers", consumers, AMQP)
    counters = (
        ("received", AMQP, "Total number of messages received from publishers", totals.publish),
        ("received_confirm", AMQP, "Total number of messages received from publishers "
         "expecting confirmations", monitor.received_confirm()),
        ("routed", AMQP, "Total number of messages routed to queues or streams",
         totals.publish - totals.drop_unroutable - totals.return_unroutable),
        ("unroutable_dropped", AMQP, "Total number of messages published as non-mandatory "
         "into an exchange and dropped as unroutable", totals.drop_unroutable),
        ("unroutable_returned", AMQP, "Total number of messages published as mandatory into "
         "an exchange and returned to the publisher as unroutable", totals.return_unroutable),
        ("confirmed", AMQP, "Total number of messages confirmed to publishers", totals.confirm),
        ("delivered", CLASSIC, "Total number of messages delivered to consumers",
         totals.deliver + totals.deliver_no_ack + totals.get + totals.get_no_ack),
        ("delivered_consume_manual_ack", CLASSIC, "Total number of messages delivered to "
         "consumers using basic.consume with manual acknowledgment", totals.deliver),
        ("delivered_consume_auto_ack", CLASSIC, "Total number of messages delivered to "
         "consumers using basic.consume with automatic acknowledgment",
         totals.deliver_no_ack),
        ("delivered_get_manual_ack", CLASSIC, "Total number of messages fetched with "
         "basic.get in manual acknowledgment mode", totals.get),
        ("delivered_get_auto_ack", CLASSIC, "Total number of messages fetched with basic.get "
         "in automatic acknowledgment mode", totals.get_no_ack),
        ("get_empty", CLASSIC, "Total number of times basic.get operations fetched no message",
         totals.get_empty),
        ("redelivered", CLASSIC, "Total number of messages redelivered to consumers",
         totals.redeliver),
        ("acknowledged", CLASSIC, "Total number of messages acknowledged by consumers",
         totals.ack),
    )
    for name, labels, text, value in counters:
        w.one(f"rabbitmq_global_messages_{name}_total", "counter", text, value, labels)
    # the open channels that have published (RabbitMQ 3.10 means this; its gauge also
    # goes down when a channel that never published closes, and so below zero)
    w.one("rabbitmq_global_publishers", "gauge", "Current number of publishers",
          sum(1 for c in channels if c.counts.publish), AMQP)
    _churn(w, metrics.broker.churn)
    dead = monitor.dead_lettered()
    for reason, text in DEAD_LETTERED:
        w.metric(f"rabbitmq_global_messages_dead_lettered_{reason}_total", "counter", text, [
            ((("queue_type", "rabbit_classic_queue"), ("dead_letter_strategy", strategy)),
             dead.get((reason, has_dlx), 0))
            for strategy, has_dlx in (("at_most_once", True), ("disabled", False))
        ])
    if per_object:
        per_queue = [(_labels((("vhost", q.vhost), ("queue", q.name))), q) for q in queues]
        for name, text, get in (*DEPTH, *PER_QUEUE):
            w.shown(name, "gauge", text, [(shown, get(q)) for shown, q in per_queue])
    return "\n".join(w.lines) + "\n"


async def _metrics(request: web.Request) -> web.Response:
    text = render(request.app[PROMETHEUS])
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def _per_object(request: web.Request) -> web.Response:
    text = render(request.app[PROMETHEUS], per_object=True)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


class PrometheusServer(HttpService):
    """Serves the metrics on ``host``:``port`` (0: a free port) on the running loop."""

    WHAT = "the Prometheus metrics"

    def __init__(self, broker: ManagedBroker, host: str = "127.0.0.1", port: int = 15692) -> None:
        app = web.Application()
        cluster = getattr(broker, "cluster_name", "kiltmq")
        metrics = Metrics(broker, f"kiltmq@{socket.gethostname().split('.')[0]}", cluster)
        app[PROMETHEUS] = metrics
        app.router.add_get("/metrics", _metrics)
        app.router.add_get("/metrics/per-object", _per_object)
        super().__init__(app, host, port, metrics.sampler)
