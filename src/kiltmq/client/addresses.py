"""The brokers a connection may use (the nodes of a cluster), and the order it tries them.

``connect`` tries the addresses in the order given (``shuffle_addresses=True``: in a
random order, to spread clients over the nodes) and stays on the first that opens.
Recovery tries the others first: the addresses after the lost one, wrapping round
(shuffled: the others in a random order), the lost one last, so a node that died is
not the first one tried again. Each address gets its own ``connection_timeout``; if all
fail, :func:`open_first` raises the last address's error, with a note naming each
earlier failure.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Protocol

from kiltmq.client.url import ConnectionParameters

__all__ = ["Addresses", "Establishing", "open_first"]

logger = logging.getLogger("kiltmq.client")


class Addresses:
    """The brokers of one connection, in the order given."""

    def __init__(self, addresses: Sequence[ConnectionParameters], shuffle: bool = False) -> None:
        if not addresses:
            raise ValueError("no broker address given")
        self.all = tuple(addresses)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return len(self.all)

    def first(self) -> list[ConnectionParameters]:
        """The order to try when connecting."""
        order = list(self.all)
        if self.shuffle:
            random.shuffle(order)
        return order

    def after(self, lost: ConnectionParameters) -> list[ConnectionParameters]:
        """The order to try when the connection to ``lost`` is gone: the others first."""
        try:
            index = next(i for i, address in enumerate(self.all) if address is lost)
        except StopIteration:
            return self.first()
        others = list(self.all[index + 1 :] + self.all[:index])
        if self.shuffle:
            random.shuffle(others)
        return [*others, lost]


class Establishing(Protocol):
    """What :func:`open_first` needs of the connection."""

    parameters: ConnectionParameters

    async def _establish(self) -> None: ...


async def open_first(connection: Establishing, order: Sequence[ConnectionParameters]) -> None:
    """Open the connection to the first address in ``order`` that accepts it."""
    failures: list[tuple[ConnectionParameters, Exception]] = []
    for address in order:
        connection.parameters = address
        try:
            await connection._establish()
        except Exception as exc:
            failures.append((address, exc))
            if len(order) > 1:
                logger.info("cannot connect to %s: %s", address.display, exc)
            continue
        return
    last = failures[-1][1]
    for address, error in failures[:-1]:
        last.add_note(f"also failed: {address.display}: {error}")
    raise last
