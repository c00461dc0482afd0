"""Serving an aiohttp application on the broker's running loop, with a stats sampler
that runs while it serves (the management API, the Prometheus metrics)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from kiltmq.broker.services import ServiceError
from kiltmq.management.stats import Sampler

__all__ = ["HttpService"]

log = logging.getLogger("kiltmq.management")


class HttpService:
    """``app`` on ``host``:``port`` (0: a free port, the real one once started)."""

    #: What it serves, for messages.
    WHAT = "HTTP"

    def __init__(self, app: web.Application, host: str, port: int, sampler: Sampler) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.sampler = sampler
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = self.host or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen; ServiceError if the address cannot be used."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ServiceError(
                f"cannot listen on {self.host}:{self.port} for {self.WHAT}: "
                f"{exc.strerror or exc}"
            ) from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        self.sampler.start(asyncio.get_running_loop())
        log.info("%s on %s", self.WHAT, self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.sampler.stop()
        await runner.cleanup()
