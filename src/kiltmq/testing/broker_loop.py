"""Running code on the event loop of a broker that runs in its own thread, from any other
thread: calls that return at once, and waits that poll until a check holds."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from kiltmq.broker import Broker

__all__ = ["CALL_TIMEOUT", "LOOP_GRACE", "POLL_INTERVAL", "BrokerLoop"]

T = TypeVar("T")

#: How often a wait looks at the broker's state (on the broker's loop), in seconds.
POLL_INTERVAL = 0.005
#: Extra time a caller waits for the broker's loop to answer beyond a wait's own timeout.
LOOP_GRACE = 5.0
#: Timeout of the calls that only look at or change the broker's state.
CALL_TIMEOUT = 10.0


class BrokerLoop:
    """The event loop of ``broker``, which must run with ``start_in_thread``. Its methods
    may not be called on that loop itself (RuntimeError): they would wait for themselves."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.loop = cast(asyncio.AbstractEventLoop, broker.call_in_loop(asyncio.get_running_loop))

    def _check_thread(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if running is self.loop:
            raise RuntimeError("BrokerFixture methods cannot be called on the broker's own loop")

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the broker's loop; its result, or its exception."""
        self._check_thread()
        return cast(T, self.broker.call_in_loop(function, *args, timeout=CALL_TIMEOUT))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def wait(self, check: Callable[[], T | None], describe: Callable[[], str], timeout: float) -> T:
        """Call ``check`` on the broker's loop until it returns something other than None,
        and return that; after ``timeout`` seconds, TimeoutError with ``describe()``."""
        self._check_thread()
        future = self._submit(_poll(check, describe, timeout))
        try:
            return future.result(timeout + LOOP_GRACE)
        except concurrent.futures.TimeoutError:
            if not future.done():
                future.cancel()
                raise TimeoutError("the broker's event loop did not answer") from None
            raise

    async def wait_async(
        self, check: Callable[[], T | None], describe: Callable[[], str], timeout: float
    ) -> T:
        """:meth:`wait` for a caller on another event loop."""
        self._check_thread()
        future = self._submit(_poll(check, describe, timeout))
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout + LOOP_GRACE)


async def _poll(check: Callable[[], T | None], describe: Callable[[], str], timeout: float) -> T:
    """On the broker's loop: call ``check`` until it returns something other than None,
    for at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if loop.time() >= deadline:
            raise TimeoutError(f"{describe()} after {timeout:g} s")
        await asyncio.sleep(POLL_INTERVAL)
