"""The management API's aiohttp application (with the web UI at ``/``) and the server
that runs it on the broker's event loop (:class:`ManagementServer`, started by the broker
when asked for)."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from kiltmq.broker.admin import Admin, AdminError, ManagedBroker, NotFound
from kiltmq.broker.monitor import Monitor
from kiltmq.management import (
    bindings,
    connections,
    definitions,
    exchanges,
    features,
    health,
    limits,
    overview,
    parameters,
    permissions,
    policies,
    queues,
    shovels,
    topic_permissions,
    user_limits,
    users,
    vhosts,
)
from kiltmq.management.access import authenticate
from kiltmq.management.context import CALLER, CONTEXT, Context
from kiltmq.management.errors import ApiError, bad_request, object_not_found
from kiltmq.management.site import HttpService
from kiltmq.management.stats import Sampler
from kiltmq.management.ui import add_ui
from kiltmq.protocol.errors import AMQPError

__all__ = ["ManagementServer", "make_app"]

#: Paths answered only to an authenticated caller.
API_PREFIXES = ("/api/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_reply(error: ApiError) -> web.Response:
    if error.error is None:
        return web.Response(status=error.status, headers=error.headers)
    body = json.dumps({"error": error.error, "reason": error.reason}).encode()
    return web.Response(
        status=error.status, body=body, content_type="application/json", headers=error.headers
    )


@web.middleware
async def _rabbitmq_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        unmatched = request.match_info.http_exception
        if unmatched is not None:  # no such path (404) or method (405): before any login
            raise unmatched
        if request.path.startswith(API_PREFIXES):
            ctx = request.app[CONTEXT]
            CALLER.set(authenticate(request, ctx.broker, ctx.sessions))
        return await handler(request)
    except ApiError as error:
        return _error_reply(error)
    except NotFound:
        return _error_reply(object_not_found())
    except AdminError as error:
        return _error_reply(bad_request(str(error)))
    except AMQPError as error:
        return _error_reply(bad_request(error.reply_text))
    except web.HTTPNotFound:
        return _error_reply(object_not_found())
    except web.HTTPMethodNotAllowed as error:
        return web.Response(status=405, headers={"Allow": ", ".join(sorted(error.allowed_methods))})


def make_app(broker: ManagedBroker, *, sample_interval: float | None = None) -> web.Application:
    """The application serving ``/api`` for ``broker``."""
    app = web.Application(middlewares=[_rabbitmq_errors], client_max_size=64 * 1024 * 1024)
    admin = Admin(broker)
    monitor = Monitor(broker, admin)
    app[CONTEXT] = Context(
        broker=broker,
        admin=admin,
        monitor=monitor,
        sampler=Sampler(monitor, sample_interval),
        node=f"kiltmq@{socket.gethostname().split('.')[0]}",
        cluster_name=getattr(broker, "cluster_name", "kiltmq"),
    )
    for module in (
        overview, vhosts, users, user_limits, permissions, limits, connections, exchanges,
        queues, bindings, health, policies, definitions, parameters, shovels, features,
        topic_permissions,
    ):
        app.add_routes(module.routes)
    add_ui(app)
    return app


class ManagementServer(HttpService):
    """Serves the management API on ``host``:``port`` (0: a free port) on the running
    loop, and samples the message rates while it runs."""

    WHAT = "the management API"

    def __init__(
        self,
        broker: ManagedBroker,
        host: str = "127.0.0.1",
        port: int = 15672,
        *,
        sample_interval: float | None = None,
    ) -> None:
        app = make_app(broker, sample_interval=sample_interval)
        super().__init__(app, host, port, app[CONTEXT].sampler)
