"""``kiltmq publish`` and ``kiltmq consume`` run as processes against each broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import kiltmq.blocking
from kiltmq.protocol import (
    Connection,
    ContentReceived,
    MethodReceived,
    ProtocolHeaderReceived,
    Role,
    spec,
)

TIMEOUT = 30


def kiltmq_command(
    *args: str, url: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiltmq", *args, "--url", url],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AMQP_URL", None)
    return env


class Consumer:
    """A ``kiltmq consume`` process, started and waited for until its queue is ready."""

    def __init__(self, *args: str, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kiltmq", "consume", *args, "--url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert self.process.stderr is not None
        line = self.process.stderr.readline()  # bounded: the process exits on failure
        if "waiting for messages" not in line:
            self.process.kill()
            raise AssertionError(f"consumer did not start: {line}{self.process.stderr.read()}")

    def output(self) -> list[str]:
        out, err = self.process.communicate(timeout=TIMEOUT)
        assert self.process.returncode == 0, err
        return out.splitlines()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=TIMEOUT)


@pytest.fixture
def names(amqp_url: str) -> Iterator[dict[str, str]]:
    """Unique queue and exchange names, deleted afterwards."""
    run = uuid.uuid4().hex[:8]
    created = {"queue": f"test.cli.q.{run}", "exchange": f"test.cli.x.{run}"}
    yield created
    with kiltmq.blocking.connect(amqp_url) as conn:
        conn.channel().queue_delete(created["queue"])
        conn.channel().exchange_delete(created["exchange"])


def test_message_waits_until_a_consumer_starts(amqp_url: str, names: dict[str, str]) -> None:
    queue = names["queue"]
    published = kiltmq_command("publish", "--queue", queue, "hello", "kilts", url=amqp_url)
    assert published.returncode == 0, published.stderr
    lines = kiltmq_command("publish", "--queue", queue, url=amqp_url, stdin="line one\nline two\n")
    assert lines.returncode == 0, lines.stderr
    consumed = kiltmq_command("consume", "--queue", queue, "--count", "3", url=amqp_url)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["hello kilts", "line one", "line two"]


def test_consumers_of_one_queue_take_turns(amqp_url: str, names: dict[str, str]) -> None:
    queue = names["queue"]
    first = Consumer("--queue", queue, "--count", "3", url=amqp_url)
    second = Consumer("--queue", queue, "--count", "3", url=amqp_url)
    try:
        messages = "".join(f"task {i}\n" for i in range(6))
        published = kiltmq_command("publish", "--queue", queue, url=amqp_url, stdin=messages)
        assert published.returncode == 0, published.stderr
        got_first, got_second = first.output(), second.output()
    finally:
        first.kill()
        second.kill()
    assert len(got_first) == 3 and len(got_second) == 3
    assert sorted(got_first + got_second) == [f"task {i}" for i in range(6)]


def test_broadcast_reaches_every_consumer(amqp_url: str, names: dict[str, str]) -> None:
    exchange = names["exchange"]
    consumers = [
        Consumer("--broadcast", "--exchange", exchange, "--count", "2", url=amqp_url)
        for _ in range(2)
    ]
    try:
        published = kiltmq_command(
            "publish", "--broadcast", "--exchange", exchange, url=amqp_url, stdin="news\nmore\n"
        )
        assert published.returncode == 0, published.stderr
        outputs = [consumer.output() for consumer in consumers]
    finally:
        for consumer in consumers:
            consumer.kill()
    assert outputs == [["news", "more"], ["news", "more"]]


def test_routing_keys_with_a_topic_exchange(amqp_url: str, names: dict[str, str]) -> None:
    queue, exchange = names["queue"], names["exchange"]
    consumer = Consumer(
        "--queue",
        queue,
        "--exchange",
        exchange,
        "--exchange-type",
        "topic",
        "--routing-key",
        "kilt.*",
        "--count",
        "1",
        "--no-ack",
        url=amqp_url,
    )
    try:
        for key, body in (("sporran.red", "no"), ("kilt.red", "yes")):
            published = kiltmq_command(
                "publish",
                "--exchange",
                exchange,
                "--exchange-type",
                "topic",
                "--routing-key",
                key,
                "--queue",
                queue,
                body,
                url=amqp_url,
            )
            assert published.returncode == 0, published.stderr
        assert consumer.output() == ["yes"]
    finally:
        consumer.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _credentials(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def test_clear_errors(amqp_url: str, names: dict[str, str]) -> None:
    refused = kiltmq_command("consume", url=f"amqp://guest:guest@127.0.0.1:{_free_port()}/")
    assert refused.returncode == 1
    assert "connection refused" in refused.stderr and refused.stderr.count("\n") == 1

    denied = kiltmq_command("publish", "x", url=_credentials(amqp_url, "wrong"))
    assert denied.returncode == 1
    assert "authentication failed" in denied.stderr and denied.stderr.count("\n") == 1

    missing = kiltmq_command(
        "publish", "--exchange", names["exchange"], "--passive", "x", url=amqp_url
    )
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and missing.stderr.count("\n") == 1

    bad_url = kiltmq_command("consume", url="http://localhost/")
    assert bad_url.returncode == 2
    assert "invalid URL" in bad_url.stderr and bad_url.stderr.count("\n") == 1


def test_help_explains_the_modes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kiltmq", "consume", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0
    assert "--broadcast" in result.stdout and "take turns" in result.stdout


class SilentConfirmServer:
    """A server that speaks AMQP far enough for ``kiltmq publish`` (handshake, channel,
    declarations, confirm.select) but never confirms a publish: what a wedged broker
    looks like to the producer."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.published = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(TIMEOUT)
        sock, _ = self.listener.accept()
        sock.settimeout(TIMEOUT)
        conn = Connection(Role.SERVER)
        replies: dict[type[spec.Method], Callable[[Any], spec.Method]] = {
            spec.ConnectionStartOk: lambda m: spec.ConnectionTune(2047, 131072, 0),
            spec.ConnectionOpen: lambda m: spec.ConnectionOpenOk(),
            spec.ChannelOpen: lambda m: spec.ChannelOpenOk(),
            spec.ExchangeDeclare: lambda m: spec.ExchangeDeclareOk(),
            spec.QueueDeclare: lambda m: spec.QueueDeclareOk(m.queue, 0, 0),
            spec.ConfirmSelect: lambda m: spec.ConfirmSelectOk(),
            spec.ChannelClose: lambda m: spec.ChannelCloseOk(),
            spec.ConnectionClose: lambda m: spec.ConnectionCloseOk(),
        }
        with sock:
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, ProtocolHeaderReceived):
                        capabilities = {"publisher_confirms": True}
                        conn.send_method(
                            0,
                            spec.ConnectionStart(
                                0, 9, {"capabilities": capabilities}, b"PLAIN", b"en_US"
                            ),
                        )
                    elif isinstance(event, ContentReceived):
                        self.published += 1  # and never a basic.ack
                    elif isinstance(event, MethodReceived):
                        reply = replies.get(type(event.method))
                        if reply is not None:
                            conn.send_method(event.channel, reply(event.method))
                sock.sendall(conn.data_to_send())


def test_publish_gives_up_when_the_broker_never_confirms() -> None:
    server = SilentConfirmServer()
    result = kiltmq_command(
        "publish",
        "--confirm-timeout",
        "0.5",
        "hello",
        url=f"amqp://guest:guest@127.0.0.1:{server.port}/",
    )
    assert result.returncode == 1, result.stderr
    assert "did not confirm 1 message(s) within 0.5 s" in result.stderr
    assert result.stderr.count("\n") == 1
    assert server.published == 1
