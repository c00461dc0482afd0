"""The tutorial's programs (examples/tutorial/) run as a reader runs them, against kiltmq
and RabbitMQ.

Each program runs in a subprocess with the broker's address given through its options,
and with exchange and queue names of the test's own (deleted afterwards). The txAMQP pair
loads a spec XML written by ``kiltmq spec``, the command the examples' README gives;
:data:`TXAMQP_VERSIONS` lists the AMQP versions it is run with (0-8 as in the tutorial,
and 0-9-1). On kiltmq
every test also has a virtual host of its own (the plugin's ``amqp_broker``), so the
programs' ``--vhost`` is used with a name that has slashes in it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

import kiltmq
import kiltmq.blocking
from kiltmq.client.url import parse_url
from kiltmq.testing import BrokerFixture

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "tutorial"

#: The AMQP versions the txAMQP programs run with: every test of a txAMQP program runs
#: once per version, with the spec XML ``kiltmq spec --amqp VERSION`` writes.
TXAMQP_VERSIONS = ("0-8", "0-9-1")

ORDERS = [
    "order 1: two kilts, Black Watch tartan",
    "order 2: one sporran, sealskin",
    "order 3: kilt pins, a dozen",
]
#: kiltmq's client takes any body; txAMQP 0.8.2 decodes each body frame as UTF-8 when it
#: can and then counts characters, not bytes, so it misreads a non-ASCII body (see
#: examples/tutorial/README.md): only consumers written with kiltmq get this one too.
NON_ASCII_ORDER = "order 4: a sgian-dubh for Mr MacLeòid, Dùn Èideann"
DEFAULT_ORDER = "order 1001: one kilt, MacGrudder tartan, 34-inch waist"
TIMEOUT = 60.0

#: The programs import this checkout's kiltmq.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    "PYTHONIOENCODING": "utf-8",
}


# -- the programs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """One side of the tutorial: ``client`` is "txamqp" (with the spec XML of AMQP
    ``version``) or "asyncio"; ``role`` is "producer" or "consumer"."""

    client: str
    role: str
    version: str = ""

    def __str__(self) -> str:
        return f"{self.client}-{self.version}" if self.version else self.client

    def argv(self, specs: SpecFiles, options: list[str], *more: str) -> list[str]:
        script = EXAMPLES / f"{self.client}_{self.role}.py"
        spec = [str(specs.path(self.version))] if self.version else []
        return [sys.executable, str(script), *spec, *options, *more]


def programs(role: str) -> list[Program]:
    """Every txAMQP program (one per spec version) and the asyncio one."""
    return [Program("txamqp", role, version) for version in TXAMQP_VERSIONS] + [
        Program("asyncio", role)
    ]


def orders_for(consumer: Program) -> list[str]:
    """The orders a test publishes to ``consumer``."""
    return [*ORDERS, NON_ASCII_ORDER] if consumer.client == "asyncio" else ORDERS


def pairs() -> list[tuple[Program, Program]]:
    """(producer, consumer): each client with itself, and txAMQP with asyncio both ways
    (txAMQP with txAMQP on the same spec version only)."""
    return [
        (producer, consumer)
        for producer in programs("producer")
        for consumer in programs("consumer")
        if producer.version == consumer.version or "asyncio" in (producer.client, consumer.client)
    ]


PAIRS = [pytest.param(p, c, id=f"{p}-to-{c}") for p, c in pairs()]


class SpecFiles:
    """The spec XML files for txAMQP, written on first use by the command the README
    gives."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written: dict[str, Path] = {}

    def path(self, version: str) -> Path:
        if version not in self.written:
            path = self.directory / f"amqp{version}.xml"
            subprocess.run(
                [sys.executable, "-m", "kiltmq", "spec", "--amqp", version, "-o", str(path)],
                check=True,
                timeout=TIMEOUT,
                env=ENV,
            )
            self.written[version] = path
        return self.written[version]


class Lines:
    """The lines a stream gives, read by a thread so that a test can wait for one with a
    timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float = TIMEOUT) -> str | None:
        """The next line, or None at the end of the stream."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout:g} s after {self.seen}") from None
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while (line := self.next(max(deadline - time.monotonic(), 0.01))) is not None:
            if text in line:
                return
        raise AssertionError(f"the stream ended without {text!r}: {self.seen}")

    def rest(self, timeout: float = TIMEOUT) -> list[str]:
        """Every line up to the end of the stream (after those already read)."""
        start = len(self.seen)
        while self.next(timeout) is not None:
            pass
        return self.seen[start:]


class Running:
    """A program running in a subprocess."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=ENV,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = Lines(self.proc.stdout)
        self.stderr = Lines(self.proc.stderr)

    def wait_ready(self) -> None:
        """Wait for the consumer's "waiting for messages" line."""
        self.stderr.wait_for("waiting for messages")

    def finish(self) -> list[str]:
        """Wait for the program to exit with status 0; returns its standard output."""
        try:
            self.proc.wait(timeout=TIMEOUT)
        finally:
            self.stop()
        out, err = self.stdout.rest(), self.stderr.rest()
        assert self.proc.returncode == 0, f"{self.argv} exited {self.proc.returncode}: {err}"
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


Start = Callable[[list[str]], Running]
Run = Callable[[list[str]], list[str]]


@pytest.fixture
def start() -> Iterator[Start]:
    """Start a program; the fixture kills it after the test if it still runs."""
    started: list[Running] = []

    def start(argv: list[str]) -> Running:
        started.append(Running(argv))
        return started[-1]

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def run(start: Start) -> Run:
    """Run a program to its end; returns its standard output."""
    return lambda argv: start(argv).finish()


# -- brokers and names -------------------------------------------------------------------


@pytest.fixture(
    params=[pytest.param("rabbitmq", marks=pytest.mark.rabbitmq), pytest.param("kiltmq")]
)
def broker(request: pytest.FixtureRequest) -> kiltmq.ConnectionParameters:
    """Where the broker under test is: RabbitMQ (the control) or kiltmq's embedded broker,
    on a virtual host of the test's own."""
    if request.param == "rabbitmq":
        return parse_url(str(request.getfixturevalue("rabbitmq_url")))
    amqp_broker: BrokerFixture = request.getfixturevalue("amqp_broker")
    return parse_url(amqp_broker.url)


@dataclass
class Names:
    """The test's exchange, queue and routing key."""

    exchange: str
    queue: str
    routing_key: str = "order"


@pytest.fixture
def names(broker: kiltmq.ConnectionParameters) -> Iterator[Names]:
    """Exchange and queue names of the test's own; both are deleted after the test."""
    prefix = f"tutorial-{uuid.uuid4().hex[:10]}."
    names = Names(exchange=prefix + "kilts", queue=prefix + "kilt-orders")
    yield names
    with (
        contextlib.suppress(kiltmq.ClientError, kiltmq.AMQPError),
        kiltmq.blocking.connect(broker, recovery=False) as conn,
    ):
        conn.channel().queue_delete(names.queue)
        conn.channel().exchange_delete(names.exchange)


@pytest.fixture
def options(broker: kiltmq.ConnectionParameters, names: Names) -> list[str]:
    """The programs' options for the broker under test and the test's names."""
    return [
        f"--host={broker.host}",
        f"--port={broker.port}",
        f"--vhost={broker.virtual_host}",
        f"--user={broker.username}",
        f"--password={broker.password}",
        f"--exchange={names.exchange}",
        f"--queue={names.queue}",
        f"--routing-key={names.routing_key}",
    ]


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> SpecFiles:
    return SpecFiles(tmp_path_factory.mktemp("tutorial"))


def wait_queue(
    broker: kiltmq.ConnectionParameters, queue: str, messages: int, consumers: int = 0
) -> None:
    """Wait until ``queue`` holds ``messages`` ready messages and has ``consumers``
    consumers (RabbitMQ counts a little after the fact)."""
    deadline = time.monotonic() + 10
    with kiltmq.blocking.connect(broker, recovery=False) as conn:
        ch = conn.channel()
        while True:
            declared = ch.queue_declare(queue, passive=True)
            counts = (declared.message_count, declared.consumer_count)
            if counts == (messages, consumers) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert counts == (messages, consumers), f"{queue}: {counts} (messages, consumers)"


# -- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(("producer", "consumer"), PAIRS)
def test_orders_wait_in_the_queue_for_the_consumer(
    producer: Program,
    consumer: Program,
    broker: kiltmq.ConnectionParameters,
    names: Names,
    options: list[str],
    specs: SpecFiles,
    run: Run,
) -> None:
    """Producer first: its orders wait in the durable queue; the consumer started later
    gets them, in order, and acks them."""
    orders = orders_for(consumer)
    assert run(producer.argv(specs, options, *orders)) == []
    wait_queue(broker, names.queue, messages=len(orders))

    received = run(consumer.argv(specs, options, f"--count={len(orders)}"))

    assert received == orders
    wait_queue(broker, names.queue, messages=0)


@pytest.mark.parametrize(("producer", "consumer"), PAIRS)
def test_consumer_gets_orders_as_they_are_published(
    producer: Program,
    consumer: Program,
    broker: kiltmq.ConnectionParameters,
    names: Names,
    options: list[str],
    specs: SpecFiles,
    start: Start,
    run: Run,
) -> None:
    """Consumer first: it declares and binds, waits, and prints the producer's orders as
    they arrive."""
    orders = orders_for(consumer)
    running = start(consumer.argv(specs, options, f"--count={len(orders)}"))
    running.wait_ready()

    assert run(producer.argv(specs, options, *orders)) == []

    assert running.finish() == orders
    wait_queue(broker, names.queue, messages=0)


@pytest.mark.parametrize("producer", programs("producer"), ids=str)
def test_producer_publishes_a_persistent_default_order(
    producer: Program,
    broker: kiltmq.ConnectionParameters,
    names: Names,
    options: list[str],
    specs: SpecFiles,
    run: Run,
) -> None:
    """Without messages on the command line the producer publishes one kilt order,
    persistent, as text."""
    assert run(producer.argv(specs, options)) == []

    with kiltmq.blocking.connect(broker, recovery=False) as conn:
        ch = conn.channel()
        assert ch.queue_declare(names.queue, passive=True).message_count == 1
        message = ch.basic_get(names.queue, no_ack=True)
    assert message is not None
    assert message.body.decode() == DEFAULT_ORDER
    assert (message.exchange, message.routing_key) == (names.exchange, names.routing_key)
    assert message.properties.delivery_mode == 2
    assert message.properties.content_type == "text/plain"


@pytest.mark.parametrize("consumer", programs("consumer"), ids=str)
def test_consumer_stops_on_ctrl_c(
    consumer: Program,
    broker: kiltmq.ConnectionParameters,
    names: Names,
    options: list[str],
    specs: SpecFiles,
    start: Start,
    run: Run,
) -> None:
    """Without --count the consumer runs until Ctrl-C (SIGINT), then closes its connection
    and exits with status 0; what it acked is gone from the queue."""
    running = start(consumer.argv(specs, options))
    running.wait_ready()
    assert run(Program("asyncio", "producer").argv(specs, options, ORDERS[0])) == []
    assert running.stdout.next() == ORDERS[0]

    running.proc.send_signal(signal.SIGINT)

    assert running.finish() == []
    assert "interrupted" in running.stderr.seen
    wait_queue(broker, names.queue, messages=0, consumers=0)
