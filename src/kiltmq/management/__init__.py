"""RabbitMQ's management HTTP API for kiltmq (needs aiohttp: ``kiltmq[management]``).

The broker starts a :class:`ManagementServer` on its own event loop when asked for
(``Broker(management_port=...)``, ``kiltmq broker --management-port``); handlers read
the broker through :class:`~kiltmq.broker.monitor.Monitor` and change it through
:class:`~kiltmq.broker.admin.Admin` and, as the calling user,
:class:`~kiltmq.broker.user_actions.UserActions`.
"""

from kiltmq.management.app import ManagementServer, make_app
from kiltmq.management.prometheus import PrometheusServer

__all__ = ["ManagementServer", "PrometheusServer", "make_app"]
