"""``/api/feature-flags``: RabbitMQ 3.10's feature flags in its list shape, each
``enabled`` where kiltmq behaves as RabbitMQ does with the flag on, else ``disabled``;
administrators only."""

from __future__ import annotations

from aiohttp import web

from kiltmq.management.context import caller
from kiltmq.management.listing import reply_list

__all__ = ["FEATURE_FLAGS", "routes"]

routes = web.RouteTableDef()

#: (name, description, documentation, provided by, enabled in kiltmq), as RabbitMQ 3.10.8.
FEATURE_FLAGS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("classic_mirrored_queue_version",
     "Support setting version for classic mirrored queues", "", "rabbit", False),
    # channels count unroutable publishes dropped (drop_unroutable)
    ("drop_unroutable_metric", "Count unroutable publishes to be dropped in stats", "",
     "rabbitmq_management_agent", True),
    # queues and channels count basic.get on empty queues (get_empty)
    ("empty_basic_get_metric", "Count AMQP `basic.get` on empty queues in stats", "",
     "rabbitmq_management_agent", True),
    # the default exchange's bindings are neither stored nor exported
    ("implicit_default_bindings",
     "Default bindings are now implicit, instead of being stored in the database", "",
     "rabbit", True),
    ("maintenance_mode_status", "Maintenance mode status", "", "rabbit", False),
    ("quorum_queue", "Support queues of type `quorum`",
     "https://www.rabbitmq.com/quorum-queues.html", "rabbit", False),
    ("stream_queue", "Support queues of type `stream`",
     "https://www.rabbitmq.com/stream.html", "rabbit", False),
    # users' max-connections and max-channels are kept and enforced
    ("user_limits", "Configure connection and channel limits for a user", "", "rabbit",
     True),
    # vhost descriptions and tags are kept
    ("virtual_host_metadata", "Virtual host metadata (description, tags, etc)", "", "rabbit",
     True),
)


@routes.get("/api/feature-flags")
async def feature_flags(request: web.Request) -> web.Response:
    caller(request).require_admin()
    items = [
        {
            "name": name,
            "desc": desc,
            "doc_url": doc_url,
            "state": "enabled" if enabled else "disabled",
            "stability": "stable",
            "provided_by": provided_by,
        }
        for name, desc, doc_url, provided_by, enabled in FEATURE_FLAGS
    ]
    return reply_list(request, items, ("name",))
