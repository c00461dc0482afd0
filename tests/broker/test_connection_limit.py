"""The broker-wide connection limit, RabbitMQ's ``connection_max``: RabbitMQ 3.10 gives it
to each listener as ranch's ``max_connections``, so a client over the limit is connected
but not answered until another connection closes."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.protocol import spec

from .loops import LOOPS, running


@pytest.fixture(params=LOOPS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    with running(Broker(port=0, max_connections=2), request.param) as started:
        yield started


def _waiting(broker: Broker) -> int:
    count: int = broker.call_in_loop(lambda: sum(len(e.waiting) for e in broker.endpoints))
    return count


def _until(condition: Callable[[], bool]) -> None:
    """Wait for something the broker does on its own thread (not a timing assertion)."""
    for _ in range(400):
        if condition():
            return
        time.sleep(0.025)
    raise AssertionError("the broker never got there")


def _pika(broker: Broker) -> pika.BlockingConnection:
    params = pika.URLParameters(broker.url)
    params.socket_timeout = 10
    return pika.BlockingConnection(params)


def _knock(broker: Broker) -> socket.socket:
    """A raw client that sent the protocol header."""
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    sock.sendall(spec.PROTOCOL_HEADER)
    return sock


def _connection_start(sock: socket.socket) -> None:
    """Read a frame and check it is connection.start."""
    sock.settimeout(10)
    head = b""
    while len(head) < 11:
        chunk = sock.recv(11 - len(head))
        assert chunk, "the broker closed the connection"
        head += chunk
    kind, channel, _size, class_id, method_id = struct.unpack(">BHIHH", head)
    assert (kind, channel, class_id, method_id) == (1, 0, 10, 10)


def test_a_connection_over_the_limit_waits_for_a_place(broker: Broker) -> None:
    first, second = _pika(broker), _pika(broker)
    third = _knock(broker)
    try:
        _until(lambda: _waiting(broker) == 1)
        third.setblocking(False)
        with pytest.raises(BlockingIOError):  # connected, but not answered
            third.recv(1)
        first.close()
        _connection_start(third)
        assert _waiting(broker) == 0
        assert second.channel().is_open
    finally:
        third.close()
        second.close()


def test_a_client_that_gave_up_waiting_does_not_keep_the_place(broker: Broker) -> None:
    first, second = _pika(broker), _pika(broker)
    gone = _knock(broker)
    _until(lambda: _waiting(broker) == 1)
    gone.close()
    patient = _knock(broker)
    try:
        _until(lambda: _waiting(broker) == 2)
        first.close()
        _connection_start(patient)
        _until(lambda: _waiting(broker) == 0)
        conn = _pika_after(broker, second)
        assert conn.is_open
        conn.close()
    finally:
        patient.close()


def _pika_after(broker: Broker, closing: pika.BlockingConnection) -> pika.BlockingConnection:
    """Close ``closing``, then open a pika connection in its place."""
    closing.close()
    return _pika(broker)


def test_no_limit_by_default_and_limits_are_checked() -> None:
    assert Broker(port=0).max_connections is None
    with pytest.raises(ValueError, match="max_connections"):
        Broker(port=0, max_connections=0)
