"""The base of a channel: its state, and synchronous methods (RPCs).

An RPC sends a method and waits for its reply (the method's -ok, or a channel.close).
The broker answers a channel's synchronous methods in order, one at a time, so the
pending calls wait in a FIFO of (expected replies, future): each reply resolves the
oldest. Calls wait while the connection is being recovered, within their timeout.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kiltmq.client.errors import ChannelClosed, ClientError
from kiltmq.client.flow import PublishGate
from kiltmq.client.state import ChannelState, Lifecycle
from kiltmq.protocol.connection import ContentReceived
from kiltmq.protocol.spec import Method

if TYPE_CHECKING:
    import logging

    from kiltmq.client.consumer import Consumer
    from kiltmq.client.topology import Topology

__all__ = ["ChannelConnection", "RpcChannel"]

M = TypeVar("M", bound=Method)


class ChannelConnection(Protocol):
    """What a channel needs of its connection."""

    loop: asyncio.AbstractEventLoop
    logger: logging.Logger
    rpc_timeout: float
    close_reason: BaseException | None
    _loop_thread: int
    _frame_max: int
    _flow: PublishGate
    _topology: Topology

    @property
    def is_open(self) -> bool: ...

    @property
    def is_closed(self) -> bool: ...

    def current_name(self, queue: str) -> str: ...

    def _send_method(self, channel: int, method: Method) -> None: ...

    def _send_frames(self, data: bytes) -> None: ...

    def _send_content(self, head: bytes, body: bytes) -> None: ...

    async def _wait_recovered(self) -> None: ...

    async def _wait_publishable(self) -> None: ...

    def _new_consumer_tag(self) -> str: ...

    def _forget_consumer(self, consumer: Consumer, cancelled: bool = False) -> None: ...

    def _channel_closed(self, channel: RpcChannel) -> None: ...


class RpcChannel(Lifecycle[ChannelState]):
    """A channel's state and its synchronous methods; :class:`~kiltmq.client.Channel`
    builds on it."""

    _OPEN = ChannelState.OPEN
    _CLOSED = ChannelState.CLOSED

    def __init__(self, connection: ChannelConnection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.loop = connection.loop
        self.state = ChannelState.OPENING
        self.close_reason = None
        self._rpc_lock = asyncio.Lock()
        self._waiters: deque[tuple[tuple[type[Method], ...], asyncio.Future[Any]]] = deque()
        #: incremented on every recovery: messages of an older epoch are stale
        self._epoch = 0

    def __repr__(self) -> str:
        return f"<Channel {self.number} {self.state.value}>"

    def _closed_error(self) -> ChannelClosed:
        reason = self.close_reason
        if reason is None and self.connection.is_closed:
            reason = self.connection.close_reason
        text = f"channel {self.number} is closed"
        if reason is not None:
            text += f": {reason}"
        return ChannelClosed(text, reason)

    async def _ready(self) -> None:
        """Wait while the connection is being recovered; raise if closed."""
        while self.state is not ChannelState.OPEN:
            if self.state is ChannelState.RECOVERING:
                await self.connection._wait_recovered()
            elif self.state is ChannelState.OPENING:
                await asyncio.sleep(0)
            else:
                raise self._closed_error()

    def _check_usable(self) -> None:
        if self.state is ChannelState.CLOSED or self.state is ChannelState.CLOSING:
            raise self._closed_error()

    async def _rpc(
        self,
        method: Method | Callable[[], Method],
        responses: tuple[type[M], ...],
        timeout: float | None = None,
        *,
        recovering: bool = False,
    ) -> M:
        """Send a synchronous method and wait for its reply.

        ``method`` may be a function making the method, called once the channel is open:
        queue names are translated then, after any connection recovery.
        """
        if timeout is None:
            timeout = self.connection.rpc_timeout
        if not recovering:
            self._check_usable()
        try:
            async with asyncio.timeout(timeout):
                if recovering:
                    return await self._send_rpc(method, responses)
                while True:
                    await self._ready()
                    async with self._rpc_lock:
                        if self.state is ChannelState.RECOVERING:
                            continue
                        if self.state is not ChannelState.OPEN:
                            raise self._closed_error()
                        return await self._send_rpc(method, responses)
        except TimeoutError:
            name = responses[0].NAME.replace("-ok", "").replace("-empty", "")
            raise TimeoutError(
                f"{name} on channel {self.number}: no reply within {timeout} s"
            ) from None

    def _send_rpc(
        self, method: Method | Callable[[], Method], responses: tuple[type[M], ...]
    ) -> asyncio.Future[M]:
        if not isinstance(method, Method):
            method = method()
        future: asyncio.Future[M] = self.loop.create_future()
        self._waiters.append((responses, future))
        self.connection._send_method(self.number, method)
        return future

    def _on_reply(self, reply: Any) -> None:
        """A reply (a method, or basic.get-ok's content) resolves the oldest call."""
        if not self._waiters:
            self.connection.logger.warning(
                "channel %d: unexpected %s", self.number, getattr(reply, "NAME", reply)
            )
            return
        responses, future = self._waiters.popleft()
        if future.done():
            return  # the caller gave up waiting (timeout or cancellation)
        method = reply.method if isinstance(reply, ContentReceived) else reply
        if isinstance(method, responses):
            future.set_result(reply)
        else:
            future.set_exception(
                ClientError(
                    f"channel {self.number}: got {method.NAME}, expected "
                    + " or ".join(r.NAME for r in responses)
                )
            )

    def _fail_waiters(self, error: BaseException) -> None:
        waiters = self._waiters
        self._waiters = deque()
        for _, future in waiters:
            if not future.done():
                future.set_exception(error)
