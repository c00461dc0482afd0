"""What every handler shares: the broker (read through a :class:`Monitor`, changed
through :class:`Admin` and, as the calling user, :class:`UserActions`), the stats
sampler, and the caller of the request."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohttp import web

from kiltmq.broker.admin import Admin, ManagedBroker
from kiltmq.broker.monitor import Monitor
from kiltmq.broker.shovel import Shovels
from kiltmq.broker.user_actions import UserActions
from kiltmq.management.access import Caller
from kiltmq.management.errors import object_not_found
from kiltmq.management.sessions import Sessions
from kiltmq.management.stats import Sampler

__all__ = ["CALLER", "CONTEXT", "Context", "caller", "context", "vhost_param"]


@dataclass
class Context:
    broker: ManagedBroker
    admin: Admin
    monitor: Monitor
    sampler: Sampler
    #: "rabbit@<host>" style node name shown in every object.
    node: str
    cluster_name: str
    #: The web UI's browser sessions.
    sessions: Sessions = field(default_factory=Sessions)

    @property
    def shovels(self) -> Shovels:
        """The shovels moving messages between the broker's queues."""
        return self.broker.shovels

    def actions(self, caller: Caller) -> UserActions:
        return UserActions(self.broker, caller.name)


CONTEXT = web.AppKey("kiltmq.management.context", Context)
#: The caller of the request being handled (set by the middleware in each request's task).
CALLER: ContextVar[Caller] = ContextVar("kiltmq.management.caller")


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]


def caller(request: web.Request) -> Caller:
    return CALLER.get()


def vhost_param(request: web.Request, *, must_exist: bool = True) -> str:
    """The ``{vhost}`` of the path, after checking that the caller may use it; 404 if
    there is no such vhost (``must_exist``)."""
    ctx = context(request)
    name = request.match_info["vhost"]
    caller(request).require_vhost(ctx.broker, name)
    if must_exist and name not in ctx.broker.vhosts:
        raise object_not_found()
    return name
