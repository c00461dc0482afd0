"""Fixtures for the compatibility suite: the URLs of the two brokers compared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def _broker_class() -> tuple[Any, str]:
    try:
        from kiltmq.broker import Broker
    except ImportError as exc:
        return None, f"kiltmq.broker is not importable yet ({exc})"
    return Broker, ""


@pytest.fixture(scope="session")
def kiltmq_url() -> Iterator[str]:
    """An embedded kiltmq broker on a free port, in a thread, for the whole session."""
    broker_cls, why = _broker_class()
    if broker_cls is None:
        pytest.skip(why)
    broker = broker_cls(port=0)
    broker.start_in_thread()
    try:
        yield str(broker.url)
    finally:
        broker.stop_thread()
