"""What every service has: settings, its own database, maybe a bus and a web site."""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import ClassVar

from aiohttp import web

from kiltstore.bus import Bus
from kiltstore.config import SERVICES, Settings
from kiltstore.domain import EVENT_CONTENT_TYPE, EVENT_TYPE, OrderEvent
from kiltstore.storage import Database, Transaction
from kiltstore.topology import ORDERS, Topology
from kiltstore.web import Site

log = logging.getLogger("kiltstore")

def service_class(name: str) -> type[Service]:
    module_name, _, class_name = SERVICES[name].partition(":")
    cls: type[Service] = getattr(importlib.import_module(module_name), class_name)
    return cls


def publish_event(
    tx: Transaction, event: OrderEvent, *, reply_to: str = "", correlation_id: str = ""
) -> None:
    """Queue an order event in the outbox of ``tx`` (with the Return Address of the
    order's source, if it gave one)."""
    tx.publish(
        ORDERS,
        event.routing_key,
        event.to_json(),
        message_id=event.message_id,
        content_type=EVENT_CONTENT_TYPE,
        type=EVENT_TYPE,
        reply_to=reply_to,
        correlation_id=correlation_id,
    )


class Service:
    """A service: override :meth:`setup` (consumers, routes) and set the class
    attributes. ``urls`` maps a label to each page the service serves."""

    name: ClassVar[str]
    #: Extra tables of the service's database.
    schema: ClassVar[str] = ""
    #: Does it talk to the broker?
    uses_bus: ClassVar[bool] = True
    #: Label of its web site in :attr:`urls` (empty: no web site).
    site_label: ClassVar[str] = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topology = Topology(settings.prefix, queue_type=settings.queues)
        self.db = Database(settings.db_path(self.name), self.schema)
        self.bus: Bus | None = (
            Bus(
                settings.amqp_url,
                self.topology,
                app_id=self.name,
                retry_delays=settings.retry_delays,
            )
            if self.uses_bus
            else None
        )
        self.app: web.Application | None = web.Application() if self.site_label else None
        self.site: Site | None = None
        self.urls: dict[str, str] = {}

    @property
    def the_bus(self) -> Bus:
        assert self.bus is not None, f"{self.name} has no bus"
        return self.bus

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start()
            self.bus.relay_outbox(self.db)
        await self.setup()
        if self.app is not None:
            self.site = Site(self.app, self.settings.host, self.settings.port)
            self.urls[self.site_label] = await self.site.start()
        await self.started()

    async def setup(self) -> None:
        """Register consumers and routes (called after the bus is up)."""

    async def started(self) -> None:
        """Called once everything is running (the site's URL is known)."""

    async def stop(self) -> None:
        if self.site is not None:
            await self.site.stop()
        if self.bus is not None:
            await self.bus.close()
        await self.stopped()
        with contextlib.suppress(Exception):
            self.db.close()

    async def stopped(self) -> None:
        """Release the service's own resources."""
