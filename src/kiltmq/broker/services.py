"""Optional services the broker runs on its event loop when asked for. The broker knows
them only through :class:`Service` and loads them by name, so ``kiltmq.broker`` imports
none of them: the management API (:mod:`kiltmq.management`) needs aiohttp, which the
broker itself does not."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol, cast

__all__ = [
    "Service",
    "ServiceError",
    "ServiceUnavailable",
    "management_service",
    "prometheus_service",
    "start_services",
]

log = logging.getLogger("kiltmq.broker")


class Service(Protocol):
    """A server started and stopped with the broker."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ServiceError(RuntimeError):
    """A service cannot start (its address is taken...); the message says why."""


class ServiceUnavailable(ServiceError):
    """A service was asked for but a package it needs is not installed."""


def _management() -> Any:
    try:
        return importlib.import_module("kiltmq.management")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("aiohttp", "multidict", "yarl"):
            raise ServiceUnavailable(
                "the management API needs aiohttp: pip install 'kiltmq[management]'"
            ) from None
        raise


def management_service(broker: Any, host: str, port: int) -> Service:
    """The management API's server for ``broker`` on ``host``:``port`` (not started)."""
    return cast(Service, _management().ManagementServer(broker, host, port))


def prometheus_service(broker: Any, host: str, port: int) -> Service:
    """The Prometheus metrics' server for ``broker`` on ``host``:``port`` (not started)."""
    return cast(Service, _management().PrometheusServer(broker, host, port))


#: The services by name, as :func:`start_services` knows them.
FACTORIES: Mapping[str, Callable[[Any, str, int], Service]] = {
    "management": management_service,
    "prometheus": prometheus_service,
}


async def start_services(
    broker: Any, host: str, ports: Mapping[str, int | None], optional: Collection[str]
) -> dict[str, Service]:
    """Start the services of ``ports`` (name -> port, None: not wanted) for ``broker`` on
    ``host``, in order; those started. One that cannot start raises ServiceError after the
    others were stopped, unless it is ``optional``: then it is logged and left out."""
    started: dict[str, Service] = {}
    try:
        for name, port in ports.items():
            if port is None:
                continue
            try:
                service = FACTORIES[name](broker, host, port)
                await service.start()
            except ServiceError as exc:
                if name not in optional:
                    raise
                log.warning("%s; running without it", exc)
                continue
            started[name] = service
    except BaseException:
        for service in reversed(started.values()):
            await service.stop()
        raise
    return started
