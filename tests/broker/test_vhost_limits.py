"""Per-vhost limits (``max-connections``, ``max-queues``): the refusals compared with
RabbitMQ's, whose vhost limits are set with ``rabbitmqctl set_vhost_limits`` on a vhost of
the test's own (created and deleted here)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.broker.vhost_limits import VhostLimitError

SetLimits = Callable[[dict[str, int]], None]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(
    params=[pytest.param("rabbitmq", marks=pytest.mark.rabbitmq), pytest.param("kiltmq")]
)
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, SetLimits]]:
    """(URL of a fresh vhost, its name, a function setting its limits) on either broker."""
    vhost = f"kiltmq-limits-{uuid.uuid4().hex[:8]}"
    if request.param == "kiltmq":
        with Broker(port=0, vhosts=["/", vhost]) as broker:
            yield (
                f"amqp://guest:guest@127.0.0.1:{broker.port}/{quote(vhost, safe='')}",
                vhost,
                lambda limits: broker.call_in_loop(broker.set_vhost_limits, vhost, limits),
            )
        return
    url = str(request.getfixturevalue("rabbitmq_url"))
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to set RabbitMQ's vhost limits")
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        parts = urlsplit(url)
        yield (
            urlunsplit(parts._replace(path="/" + quote(vhost, safe=""))),
            vhost,
            lambda limits: _rabbitmqctl("set_vhost_limits", "-p", vhost, json.dumps(limits)),
        )
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.socket_timeout = 10
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


@pytest.mark.parametrize("limit", [1, 0])
def test_a_connection_over_max_connections_is_refused_at_open(
    target: tuple[str, str, SetLimits], limit: int
) -> None:
    url, vhost, set_limits = target
    set_limits({"max-connections": limit})
    with contextlib.ExitStack() as stack:
        for _ in range(limit):
            stack.callback(_connect(url).close)
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            _connect(url)
    assert (
        f"(530) \"NOT_ALLOWED - access to vhost '{vhost}' refused for user 'guest': "
        f"connection limit ({limit}) is reached\""
    ) in str(refused.value)


def test_closed_connections_make_room_and_a_negative_limit_is_none(
    target: tuple[str, str, SetLimits],
) -> None:
    url, _vhost, set_limits = target
    set_limits({"max-connections": 1})
    _connect(url).close()
    _connect(url).close()
    set_limits({"max-connections": -1})
    with contextlib.closing(_connect(url)), contextlib.closing(_connect(url)):
        pass


def test_a_queue_over_max_queues_is_refused_at_declare(
    target: tuple[str, str, SetLimits],
) -> None:
    url, vhost, set_limits = target
    set_limits({"max-queues": 1})
    with contextlib.closing(_connect(url)) as conn:
        channel = conn.channel()
        channel.queue_declare("first", auto_delete=True)
        channel.queue_declare("first", auto_delete=True)  # redeclaring is no new queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare("second")
        assert refused.value.reply_code == 406
        assert refused.value.reply_text == (
            f"PRECONDITION_FAILED - cannot declare queue 'second': queue limit in vhost "
            f"'{vhost}' (1) is reached"
        )
        channel = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare("", exclusive=True)
        assert refused.value.reply_text.startswith(
            "PRECONDITION_FAILED - cannot declare queue 'amq.gen-"
        )
        assert refused.value.reply_text.endswith(
            f"': queue limit in vhost '{vhost}' (1) is reached"
        )
        channel = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as missing:
            channel.queue_declare("second", passive=True)
        assert missing.value.reply_code == 404
        channel = conn.channel()
        set_limits({"max-queues": -1})
        channel.queue_declare("second", auto_delete=True)
        channel.queue_delete("second")
        channel.queue_delete("first")


def test_invalid_limits_are_refused() -> None:
    with Broker(port=0) as broker:
        for limits in ({"max-foo": 1}, {"max-queues": "x"}, {"max-queues": 1.5}, "[1]", "{"):
            with pytest.raises(VhostLimitError):
                broker.call_in_loop(broker.set_vhost_limits, "/", limits)
        with pytest.raises(KeyError):
            broker.call_in_loop(broker.set_vhost_limits, "nope", {"max-queues": 1})
        broker.call_in_loop(broker.set_vhost_limits, "/", '{"max-queues": 0}')
        assert broker.vhosts["/"].limits == {"max-queues": 0}
