"""Automatic connection recovery.

When the connection ends without the application closing it (the socket drops,
heartbeats stop, the server closes it), calls that were waiting and publishes not yet
confirmed fail with :class:`~kiltmq.client.errors.ConnectionLost`; then :func:`recover`
reconnects, to the next broker of its address list that accepts it (see
:mod:`kiltmq.client.addresses`; a round over the list is one attempt, with exponential
backoff between rounds), and restores what the application declared through the
connection, in this order: channels (same numbers, with their basic.qos,
confirm and tx modes), exchanges, queues (a server-named queue gets a new name, and the
old name keeps working on this connection: it is translated wherever a queue name is
passed, including the routing key of publishes to the default exchange), bindings
(queue and exchange-to-exchange) and consumers (same consumer tags; iterators keep
yielding). Meanwhile calls wait for the recovery (within their timeout). See
docs/client.md for what cannot be recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from kiltmq.client.addresses import Addresses
from kiltmq.client.channel import Channel
from kiltmq.client.errors import ConnectionLost
from kiltmq.client.state import ChannelState, ConnectionState
from kiltmq.client.topology import Topology
from kiltmq.client.url import ConnectionParameters
from kiltmq.protocol.errors import ResourceLocked, SoftError
from kiltmq.protocol.spec import Method

__all__ = ["Recoverable", "recover"]

logger = logging.getLogger("kiltmq.client")


class Recoverable(Protocol):
    """What recovery needs of the connection."""

    state: ConnectionState
    parameters: ConnectionParameters
    addresses: Addresses
    recovery_initial_delay: float
    recovery_max_delay: float
    recovery_attempts: int | None
    recoveries: int
    on_recovered: list[Callable[[], Any]]
    _channels: dict[int, Channel]
    _recovered: asyncio.Event
    _topology: Topology

    async def _establish(self) -> None: ...

    def _abort_transport(self) -> None: ...

    def _terminate(self, reason: BaseException | None) -> None: ...

    async def _recovery_channel(self) -> Channel: ...


def _recovering(connection: Recoverable) -> bool:
    return connection.state is ConnectionState.RECOVERING


async def recover(connection: Recoverable) -> None:
    """Reconnect and restore until it works, the attempts run out or the application
    closes the connection."""
    delay = connection.recovery_initial_delay
    attempt = 0
    last_error: BaseException | None = None
    lost = connection.parameters
    while _recovering(connection):
        attempt += 1
        await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
        delay = min(delay * 2, connection.recovery_max_delay)
        for address in connection.addresses.after(lost):
            if not _recovering(connection):
                return
            error = await _attempt(connection, address)
            if error is None:
                _recovered(connection)
                return
            last_error = error
            logger.warning(
                "recovery attempt %d on %s failed: %s", attempt, address.display, error
            )
        attempts = connection.recovery_attempts
        if attempts is not None and attempt >= attempts:
            connection._terminate(
                ConnectionLost(f"recovery failed after {attempt} attempts", last_error)
            )
            return


async def _attempt(connection: Recoverable, address: ConnectionParameters) -> Exception | None:
    """Connect to ``address`` and restore; the error if that failed (cleaned up)."""
    connection.parameters = address
    try:
        await connection._establish()
        await _restore(connection)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        for channel in list(connection._channels.values()):
            if channel.state is not ChannelState.CLOSED:
                channel._suspend(ConnectionLost("connection lost during recovery", exc))
        connection._abort_transport()
        return exc
    return None


def _recovered(connection: Recoverable) -> None:
    connection.state = ConnectionState.OPEN
    connection.recoveries += 1
    for channel in connection._channels.values():
        if channel.state in (ChannelState.RECOVERING, ChannelState.OPENING):
            channel.state = ChannelState.OPEN
    connection._recovered.set()
    logger.info("connection to %s recovered", connection.parameters.display)
    for callback in list(connection.on_recovered):
        try:
            callback()
        except Exception:
            logger.exception("on_recovered callback failed")


async def _restore(connection: Recoverable) -> None:
    channels = sorted(connection._channels.values(), key=lambda ch: ch.number)
    for channel in channels:
        if channel.state is ChannelState.RECOVERING:
            await channel._reopen()
    if connection._topology:
        await _restore_topology(connection)
    for channel in channels:
        if channel.state is ChannelState.RECOVERING:
            with contextlib.suppress(SoftError):  # the broker closed that channel
                await channel._recover_consumers()


async def _restore_topology(connection: Recoverable) -> None:
    """Declare exchanges, queues and bindings again on a temporary channel; an
    error (say, an exchange declared elsewhere with other arguments) is logged and
    recovery goes on with the next entity."""
    holder: list[Channel] = [await connection._recovery_channel()]

    async def attempt(what: str, method: Method, responses: tuple[type[Method], ...]) -> Any:
        for retry in range(5):
            try:
                return await holder[0]._rpc(method, responses, recovering=True)
            except SoftError as exc:
                holder[0] = await connection._recovery_channel()
                if isinstance(exc, ResourceLocked) and retry < 4:
                    # an exclusive queue of the dead connection not yet cleaned up
                    await asyncio.sleep(0.2 * (retry + 1))
                    continue
                logger.warning("could not recover %s: %s", what, exc)
                return None
        return None

    await connection._topology.restore(attempt)
    await holder[0].close()
