"""An asyncio event loop run in a daemon thread: how a :class:`~kiltmq.broker.Broker` is
run from synchronous code (``with Broker() as broker:``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["LoopThread"]


class LoopThread:
    """One event loop in one daemon thread, started with a coroutine that sets things up
    and stopped with one that tears them down."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, setup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start the thread and run ``setup()`` on its loop; return once that is done
        (raising what it raised, the thread then gone). Nothing if already running."""
        if self._thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        if failure:
            self._thread = None
            self._loop = None
            raise failure[0]

    def stop(self, teardown: Callable[[], Coroutine[Any, Any, None]], timeout: float) -> None:
        """Run ``teardown()`` on the loop, then stop the loop and join the thread (each
        waited for up to ``timeout`` seconds). Nothing if not running."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(teardown(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._thread = None
            self._loop = None

    def call(self, function: Callable[..., Any], *args: Any, timeout: float) -> Any:
        """Run ``function(*args)`` on the loop and return its result (RuntimeError if the
        thread is not running)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the broker is not running in a thread")

        async def call() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)
