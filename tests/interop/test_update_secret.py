"""connection.update-secret (RabbitMQ's credential rotation) from pika, against kiltmq and
RabbitMQ. RabbitMQ 3.10 checks a new secret only for auth backends whose credentials
expire (OAuth 2); for its internal users, as for kiltmq's, any secret is taken."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from .conftest import Names


@pytest.fixture
def conn(broker_url: str) -> Iterator[pika.BlockingConnection]:
    params = pika.URLParameters(broker_url)
    params.socket_timeout = 5
    params.stack_timeout = 10
    connection = pika.BlockingConnection(params)
    yield connection
    if connection.is_open:
        connection.close()


def round_trip(conn: pika.BlockingConnection, queue: str) -> bytes | None:
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=False)
    ch.basic_publish("", queue, b"after rotation")
    for _ in range(50):
        _method, _props, body = ch.basic_get(queue, auto_ack=True)
        if body is not None:
            ch.close()
            return bytes(body)
        conn.process_data_events(0.05)
    return None


def test_right_secret_is_taken_and_the_connection_keeps_working(
    conn: pika.BlockingConnection, names: Names
) -> None:
    conn.update_secret("guest", "credentials rotated")  # waits for update-secret-ok
    assert conn.is_open
    assert round_trip(conn, names.q("rotated")) == b"after rotation"


def test_wrong_secret_is_taken_as_rabbitmq_takes_it(
    conn: pika.BlockingConnection, names: Names
) -> None:
    conn.update_secret("not the password", "credentials rotated")
    assert conn.is_open
    assert round_trip(conn, names.q("wrong-secret")) == b"after rotation"


def test_repeated_updates(conn: pika.BlockingConnection, names: Names) -> None:
    for n in range(3):
        conn.update_secret("guest", f"rotation {n}")
    assert round_trip(conn, names.q("repeated")) == b"after rotation"
