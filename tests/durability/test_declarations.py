"""A declare-ok, bind-ok or delete-ok for a durable object is a promise: kill -9 right
after it and the object is there (or gone) after the restart.

Each round, a broker process (``python -m kiltmq broker --data-dir ...``) first gets a
burst of large persistent messages, so that the store's group commit is busy writing when
the declarations arrive (without the fix their replies went out before their definitions
were committed, and these kills lost them). The broker is killed with SIGKILL as soon as
the last reply has arrived, then started again and checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pika
import pytest

from .conftest import BrokerProcess, blocking

pytestmark = pytest.mark.timeout(120)

ROUNDS = 3
LOAD = (40, 256 * 1024)  # persistent messages (count, size) sent just before declaring
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def _load(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
    """Keep the store's writer busy: a burst of large persistent messages."""
    channel.queue_declare("load", durable=True)
    body = b"x" * LOAD[1]
    for _ in range(LOAD[0]):
        channel.basic_publish("", "load", body, PERSISTENT)


@contextlib.contextmanager
def _connection(url: str) -> Iterator[pika.BlockingConnection]:
    """A connection that may outlive its broker (closing it then is a no-op)."""
    conn = blocking(url)
    try:
        yield conn
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):
            conn.close()


def _exists(conn: pika.BlockingConnection, kind: str, name: str) -> bool:
    channel = conn.channel()
    try:
        if kind == "queue":
            channel.queue_declare(name, passive=True)
        else:
            channel.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return False
    channel.close()
    return True


def _routed(conn: pika.BlockingConnection, exchange: str) -> bool:
    """Whether a mandatory message to ``exchange`` reaches a queue (its bindings)."""
    channel = conn.channel()
    channel.confirm_delivery()
    try:
        channel.basic_publish(exchange, "k", b"probe", mandatory=True)
    except pika.exceptions.UnroutableError:
        return False
    finally:
        channel.close()
    return True


def test_durable_declarations_survive_a_kill_right_after_their_reply(
    broker_process: BrokerProcess,
) -> None:
    declared: list[int] = []
    for r in range(ROUNDS):
        broker_process.start()
        with _connection(broker_process.url) as conn:
            for k in declared:
                assert _exists(conn, "exchange", f"x{k}"), f"exchange of round {k} lost"
                assert _exists(conn, "exchange", f"y{k}"), f"exchange of round {k} lost"
                assert _exists(conn, "queue", f"q{k}"), f"queue of round {k} lost"
                assert _routed(conn, f"y{k}"), f"bindings of round {k} lost"
            channel = conn.channel()
            _load(channel)
            channel.exchange_declare(f"x{r}", "direct", durable=True)
            channel.exchange_declare(f"y{r}", "fanout", durable=True)
            channel.queue_declare(f"q{r}", durable=True)
            channel.queue_bind(f"q{r}", f"x{r}", "k")
            channel.exchange_bind(f"x{r}", f"y{r}")  # y -> x -> q
            broker_process.kill()  # the moment bind-ok arrived
        declared.append(r)

    # deletions are promises too
    broker_process.start()
    with _connection(broker_process.url) as conn:
        channel = conn.channel()
        _load(channel)
        channel.exchange_unbind("x1", "y1")
        channel.queue_unbind("q2", "x2", "k")
        channel.queue_delete("q0")
        channel.exchange_delete("x0")
        broker_process.kill()
    broker_process.start()
    with _connection(broker_process.url) as conn:
        assert not _exists(conn, "queue", "q0")
        assert not _exists(conn, "exchange", "x0")
        assert not _routed(conn, "y1")  # unbound from x1
        assert _routed(conn, "x1")
        assert not _routed(conn, "x2")  # q2 unbound
        assert _exists(conn, "queue", "q1") and _exists(conn, "queue", "q2")
    broker_process.stop()
