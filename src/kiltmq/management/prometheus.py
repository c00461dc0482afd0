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

from aiohttp import web

from kiltmq.broker.admin import Admin, ManagedBroker
from kiltmq.broker.churn import Churn
from kiltmq.broker.monitor import Monitor, QueueFigures
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
    w.one("rabbitmq_alarms_memory_used_watermark", "untyped",
          "is 1 if VM memory watermark alarm is in effect", int(status.memory_alarm))
    w.one("rabbitmq_alarms_free_disk_space_watermark", "untyped",
          "is 1 if free disk space watermark alarm is in effect", int("disk" in status.alarms))
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = 0
    w.one("rabbitmq_process_open_fds", "gauge", "Open file descriptors", fds)
    w.one("rabbitmq_process_max_fds", "gauge", "Open file descriptors limit",
          resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    try:
        free = shutil.disk_usage(status.data_dir or os.getcwd()).free
    except OSError:
        free = 0
    w.one("rabbitmq_disk_space_available_bytes", "gauge", "Disk space available in bytes", free)
    w.one("rabbitmq_erlang_uptime_seconds", "gauge", "Node uptime", round(status.uptime, 3))
    w.one("rabbitmq_global_consumers", "gauge", "Current number of consumers", consumers, AMQP)
    counters = (
        ("received", AMQP, "Total number of messages received from publishers", totals.publish),
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
    _churn(w, metrics.broker.churn)
    w.one("rabbitmq_channel_messages_unroutable_returned_total", "counter",
          "Total number of messages published as mandatory into an exchange and returned to "
          "the publisher as unroutable", totals.return_unroutable)
    w.one("rabbitmq_channel_messages_unroutable_dropped_total", "counter",
          "Total number of messages published as non-mandatory into an exchange and dropped "
          "as unroutable", totals.drop_unroutable)
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
