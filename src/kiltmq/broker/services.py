"""Optional services the broker runs on its event loop when asked for. The broker knows
them only through :class:`Service` and loads them by name, so ``kiltmq.broker`` imports
none of them: the management API (:mod:`kiltmq.management`) needs aiohttp, which the
broker itself does not."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, cast

__all__ = [
    "Service",
    "ServiceError",
    "ServiceUnavailable",
    "management_service",
    "prometheus_service",
]


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
