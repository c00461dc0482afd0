"""What a test using the pytest plugin costs, against RabbitMQ.

Each case is what one test pays before and after its own code, with pika as the client
(a BlockingConnection, a channel, one queue.declare, close), run ``--rounds`` times; the
median and the slowest are printed, in milliseconds:

- *fresh vhost*: the default ``amqp_broker`` (the session's broker, a vhost of the test's
  own created and deleted around it, the publish log on), and that without the client;
- *broker per test*: ``@pytest.mark.kiltmq_broker(scope="function")``
  (``BrokerFixture.start()`` and ``stop()``, a broker in a thread);
- *frozen clock, 30-minute TTL*: a fresh vhost, a message with a 30-minute TTL expired by
  ``clock.advance(1800)``;
- *RabbitMQ, connect and declare*: the same client work against the running RabbitMQ
  (``KILTMQ_RABBITMQ_URL``, default amqp://guest:guest@127.0.0.1:5672/), skipped if it is
  not reachable; a vhost per test there would add a management call on top;
- *RabbitMQ node started* (``--rabbitmq-starts N``, default 0: left out): a throwaway
  RabbitMQ node of Debian's rabbitmq-server, started N times as a test suite that starts
  its own would: its own node name, AMQP and distribution ports and data, log and
  config directories in a temporary directory (as scripts/rabbitmq-cluster.sh does for
  its nodes), timed from launch until AMQP accepts a pika connection; then stopped by
  its PID (SIGTERM) and its directory deleted. The shared node on 5672 is not touched.
  Needs root (the node runs as the rabbitmq user, with its Erlang cookie).

``python -m benchmarks.testing_fixture [--rounds 30] [--rabbitmq-starts 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence

import pika
import pika.exceptions

from kiltmq.testing import BrokerFixture

RABBITMQ_URL = os.environ.get("KILTMQ_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def client_work(url: str, queue: str = "bench") -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)
    conn.close()


RMQ_BIN = "/usr/lib/rabbitmq/bin"
RMQ_HOME = "/var/lib/rabbitmq"
#: How long a node may take to start before the row gives up.
START_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _host() -> str:
    """The host part of a node name, as rabbitmq-server makes it."""
    short = socket.gethostname().split(".")[0]
    try:
        socket.gethostbyname(short)
    except OSError:
        return "localhost"
    return short


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_rabbitmq_node(n: int) -> float:
    """Start a throwaway RabbitMQ node, time it until AMQP accepts a connection, stop
    it by its PID and delete its files; the seconds it took to start."""
    base = tempfile.mkdtemp(prefix="kiltmq-bench-rabbit-")
    name = f"kiltbench{os.getpid()}x{n}"
    node = f"{name}@{_host()}"
    port, dist_port = _free_port(), _free_port()
    for sub in ("mnesia", "log", "plugins-expand", "quorum", "stream"):
        os.makedirs(os.path.join(base, sub))
    files = {"enabled_plugins": "[].\n", "rabbitmq-env.conf": "", "rabbitmq.conf": "",
             "advanced.config": "[].\n"}
    for file, text in files.items():
        with open(os.path.join(base, file), "w", encoding="utf-8") as out:
            out.write(text)
    shutil.chown(base, "rabbitmq", "rabbitmq")
    for root, dirs, names in os.walk(base):
        for each in dirs + names:
            shutil.chown(os.path.join(root, each), "rabbitmq", "rabbitmq")
    pid_file = os.path.join(base, f"{name}.pid")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": RMQ_HOME,
        "RABBITMQ_NODENAME": node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port), "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONF_ENV_FILE": os.path.join(base, "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": os.path.join(base, "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(base, "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(base, "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": os.path.join(base, "mnesia"),
        "RABBITMQ_MNESIA_DIR": os.path.join(base, "mnesia", name),
        "RABBITMQ_FEATURE_FLAGS_FILE": os.path.join(base, "mnesia", f"{name}-feature_flags"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(base, "plugins-expand"),
        "RABBITMQ_QUORUM_DIR": os.path.join(base, "quorum"),
        "RABBITMQ_STREAM_DIR": os.path.join(base, "stream"),
        "RABBITMQ_LOG_BASE": os.path.join(base, "log"),
        "RABBITMQ_PID_FILE": pid_file,
    }
    command = [os.path.join(RMQ_BIN, "rabbitmq-server")]
    if os.getuid() == 0:
        command = ["runuser", "-u", "rabbitmq", "--", *command]
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    with open(os.path.join(base, "console.log"), "wb") as console:
        start = time.perf_counter()
        launcher = subprocess.Popen(
            command, cwd=base, env=env, stdin=subprocess.DEVNULL, stdout=console,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        while True:
            try:
                client_work(url)
                break
            except (pika.exceptions.AMQPError, OSError):
                if launcher.poll() is not None:
                    raise RuntimeError(
                        f"RabbitMQ node {node} exited ({launcher.returncode}): "
                        + _tail(os.path.join(base, "console.log"))
                    ) from None
                if time.perf_counter() - start > START_TIMEOUT:
                    raise TimeoutError(
                        f"RabbitMQ node {node} not up in {START_TIMEOUT} s"
                    ) from None
                time.sleep(0.05)
        seconds = time.perf_counter() - start
    finally:
        _stop_node(launcher, pid_file)
        shutil.rmtree(base, ignore_errors=True)
    return seconds


def _tail(path: str) -> str:
    """The last lines of a node's console output (its files are deleted after)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-10:])
    except OSError:
        return "(no console output)"


def _stop_node(launcher: subprocess.Popen[bytes], pid_file: str) -> None:
    """SIGTERM the node's own process (its PID file), then what this launched."""
    pid = None
    try:
        with open(pid_file, encoding="utf-8") as file:
            pid = int(file.read().strip() or 0) or None
    except (OSError, ValueError):
        pass
    targets = [p for p in (pid, launcher.pid) if p is not None]
    for target in targets:
        if _alive(target):
            os.kill(target, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while any(_alive(t) for t in targets if t != launcher.pid) or launcher.poll() is None:
        if time.monotonic() > deadline:
            for target in targets:
                if _alive(target):
                    os.kill(target, signal.SIGKILL)
            launcher.wait()
            break
        time.sleep(0.1)


def timed(rounds: int, one: Callable[[int], None]) -> tuple[float, float]:
    times = []
    for n in range(rounds):
        start = time.perf_counter()
        one(n)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.testing_fixture")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--rabbitmq-starts", type=int, default=0,
        help="also start a throwaway RabbitMQ node this many times (needs root and "
        "Debian's rabbitmq-server)",
    )
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, float]] = []

    with BrokerFixture.start() as shared:
        def fresh_vhost(n: int) -> None:
            fixture = shared.add_vhost(f"pytest/{n}/bench")
            fixture.record_published()
            client_work(fixture.url)
            fixture.stop_recording_published()
            fixture.delete_vhost()

        rows.append(("fresh vhost (default amqp_broker)", *timed(args.rounds, fresh_vhost)))

        def vhost_only(n: int) -> None:
            fixture = shared.add_vhost(f"pytest/only{n}/bench")
            fixture.record_published()
            fixture.stop_recording_published()
            fixture.delete_vhost()

        rows.append(("  of which the fixture (no client)", *timed(args.rounds, vhost_only)))

        def frozen_ttl(n: int) -> None:
            fixture = shared.add_vhost(f"pytest/ttl{n}/bench")
            fixture.clock.freeze()
            fixture.call_in_loop(lambda: None)
            conn = pika.BlockingConnection(pika.URLParameters(fixture.url))
            channel = conn.channel()
            channel.queue_declare("q", arguments={"x-message-ttl": 1_800_000})
            channel.basic_publish("", "q", b"x")
            fixture.wait_messages("q")
            fixture.clock.advance(1800)
            assert fixture.queue("q").message_count == 0
            conn.close()
            fixture.clock.resume()
            fixture.delete_vhost()

        rows.append(("fresh vhost, 30-minute TTL expired", *timed(args.rounds, frozen_ttl)))

    def own_broker(_n: int) -> None:
        with BrokerFixture.start() as fixture:
            client_work(fixture.url)

    rows.append(("broker per test", *timed(args.rounds, own_broker)))

    try:
        client_work(RABBITMQ_URL)
    except (pika.exceptions.AMQPError, OSError) as exc:
        print(f"RabbitMQ at {RABBITMQ_URL} not reachable ({exc}): its row is left out")
    else:
        rows.append((
            "RabbitMQ: connect and declare",
            *timed(args.rounds, lambda n: client_work(RABBITMQ_URL, f"kiltmq-bench-{n}")),
        ))

    if args.rabbitmq_starts:
        starts = [start_rabbitmq_node(n) * 1000 for n in range(args.rabbitmq_starts)]
        rows.append((
            f"RabbitMQ node started ({args.rabbitmq_starts}x)",
            statistics.median(starts), max(starts),
        ))

    print(f"{args.rounds} rounds each; milliseconds per test (pika connect, channel, "
          "queue.declare, close included)")
    print(f"| {'case':<38} | {'median':>7} | {'slowest':>8} |")
    print(f"|{'-' * 40}|{'-' * 8}:|{'-' * 9}:|")
    for title, median, slowest in rows:
        print(f"| {title:<38} | {median:>7.1f} | {slowest:>8.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
