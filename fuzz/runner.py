"""The fuzzing run: a broker subprocess, mutated streams on parallel connections, checks.

Each connection gets one stream (:func:`fuzz.corpus.stream`, mutated by
:func:`fuzz.mutate.mutate`) written at once and followed by EOF, then is read until
the broker closes it. Every ``check_every`` frames, and at the end, the run checks that
the broker process is alive, that a fresh connection can declare, publish and get, and
that the broker's log has no ERROR line and no traceback. The stream of a connection
whose peer address an ERROR line names, or that the broker did not close, is saved for
``python -m fuzz --replay``; when a check fails the last streams sent are saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.corpus import samples, stream
from fuzz.mutate import mutate
from kiltmq.bench.rawclient import RawClient
from kiltmq.protocol import spec

_PEER = re.compile(r"127\.0\.0\.1:(\d+)")
CLOSE_TIMEOUT = 20.0
"""Seconds the broker has to close a connection after its stream and EOF."""
HANDSHAKE_WAIT = 1.0
"""Seconds to wait for connection.start and connection.tune before sending on."""


@dataclass
class Case:
    number: int
    #: protocol header, start-ok, the rest: each sent once the broker answered the last
    parts: list[bytes]
    frames: int
    mutations: list[str]
    before_login: bool


@dataclass
class Finding:
    what: str
    detail: str
    saved: list[Path] = field(default_factory=list)


@dataclass
class Stats:
    frames: int = 0
    connections: int = 0
    before_login: int = 0
    checks: int = 0
    seconds: float = 0.0
    broker_rss_kib: int = 0
    findings: list[Finding] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BrokerProcess:
    """``kiltmq broker`` in memory-only mode, its log (stderr) in a file."""

    def __init__(self, log_path: Path, level: str = "warning") -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kiltmq",
                "broker",
                "--port",
                str(self.port),
                "--memory-only",
                "--no-ctl-socket",
                "--log-level",
                level,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._log_pos = 0

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the broker exited with {self.proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        """The broker's peak resident memory (Linux), 0 if unknown."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def new_log_lines(self) -> list[str]:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._log_pos += end
        return data[:end].decode("utf-8", "replace").splitlines()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


async def round_trip(port: int, timeout: float = 15.0) -> str | None:
    """A fresh connection declares, publishes and gets; None if it worked, else why not."""
    try:
        client = await RawClient.connect(port, timeout=timeout)
        try:
            await client.open_channel(1)
            ok = await client.call(1, spec.QueueDeclare("", exclusive=True), timeout)
            assert isinstance(ok, spec.QueueDeclareOk), ok
            client.publish(1, "", ok.queue, b"still up")
            got = await client.call(1, spec.BasicGet(ok.queue, no_ack=True), timeout)
            assert isinstance(got, spec.BasicGetOk), got
        finally:
            await client.disconnect()
    except Exception as exc:  # every way the check can fail is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def encode_parts(parts: list[bytes]) -> bytes:
    """Parts of a case as one file: each with a 32-bit length first."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def decode_parts(data: bytes) -> list[bytes]:
    parts, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        parts.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return parts


async def _answer(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Wait for the broker's next bytes; False at EOF (or after ``timeout``)."""
    try:
        async with asyncio.timeout(timeout):
            return bool(await reader.read(65536))
    except (TimeoutError, ConnectionError):
        return False


async def send_case(
    port: int, case: Case, connected: Callable[[int], None], timeout: float = CLOSE_TIMEOUT
) -> bool:
    """Send the case's parts, each after the broker answered the one before (the
    handshake is not pipelined), then EOF; read until the broker closes. ``connected``
    gets the local port first. Returns whether the broker closed in time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connected(writer.get_extra_info("sockname")[1])
    closed = True
    try:
        *steps, rest = case.parts
        for part in steps:
            writer.write(part)
            if not await _answer(reader, HANDSHAKE_WAIT):
                break
        else:
            writer.write(rest)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            writer.write_eof()
        try:
            async with asyncio.timeout(timeout):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            closed = False
        except ConnectionError:
            pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return closed


class Run:
    """One fuzzing run; see the module docstring."""

    def __init__(
        self,
        frames: int,
        *,
        seed: int,
        concurrency: int,
        check_every: int,
        out: Path,
        before_login: float = 0.2,
        log: bool = True,
    ) -> None:
        self.target = frames
        self.seed = seed
        self.concurrency = concurrency
        self.check_every = check_every
        self.out = out
        self.before_login = before_login
        self.log = log
        self.stats = Stats()
        self.pool = samples(random.Random(seed))
        self.recent: deque[Case] = deque(maxlen=200)
        self.by_port: OrderedDict[int, Case] = OrderedDict()
        self._next_case = 0
        self._next_check = check_every
        self._checking = False
        self._stop = False

    def make_case(self) -> Case:
        number = self._next_case
        self._next_case += 1
        rng = random.Random(self.seed * 1_000_003 + number)
        frames, login = stream(rng)
        early = rng.random() < self.before_login
        names = mutate(rng, frames, 1 if early else login - 1, self.pool)
        parts = [frames[0], frames[1], b"".join(frames[2:])]
        return Case(number, parts, len(frames) - 1, names, early)

    def save(self, case: Case, why: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"case-{self.seed}-{case.number}.bin"
        path.write_bytes(encode_parts(case.parts))
        path.with_suffix(".txt").write_text(
            f"{why}\nmutations: {', '.join(case.mutations)}\n"
            f"before login: {case.before_login}\nreplay: python -m fuzz --replay {path}\n"
        )
        return path

    def finding(self, what: str, detail: str, cases: list[Case]) -> None:
        saved = [self.save(c, f"{what}: {detail}") for c in cases]
        self.stats.findings.append(Finding(what, detail, saved))
        if self.log:
            print(f"FINDING {what}: {detail} ({len(saved)} input(s) saved)", flush=True)

    async def worker(self, broker: BrokerProcess) -> None:
        while not self._stop and self.stats.frames < self.target:
            case = self.make_case()
            self.recent.append(case)
            local = 0

            def connected(port: int, case: Case = case) -> None:
                nonlocal local
                local = port
                self.by_port[port] = case
                self.by_port.move_to_end(port)
                if len(self.by_port) > 5000:
                    self.by_port.popitem(last=False)

            try:
                closed = await send_case(broker.port, case, connected)
            except OSError as exc:
                if not broker.alive():
                    self._stop = True
                    return
                self.finding("connect", f"{type(exc).__name__}: {exc}", [case])
                await asyncio.sleep(0.5)
                continue
            if not closed:
                self.finding("hang", f"the broker kept connection {local} open after EOF", [case])
            self.stats.frames += case.frames
            self.stats.connections += 1
            self.stats.before_login += case.before_login
            if self.stats.frames >= self._next_check and not self._checking:
                self._next_check += self.check_every
                await self.check(broker)

    async def check(self, broker: BrokerProcess) -> bool:
        """Alive, answering, and a clean log; findings recorded. False to stop."""
        self._checking = True
        try:
            self.stats.checks += 1
            self.scan_log(broker)
            if not broker.alive():
                self.finding(
                    "crash", f"broker exited with {broker.proc.returncode}", list(self.recent)
                )
                self._stop = True
                return False
            problem = await round_trip(broker.port)
            if problem is not None:
                self.finding("unresponsive", problem, list(self.recent))
                self._stop = True
                return False
            if self.log:
                rate = self.stats.frames / max(time.monotonic() - self._started, 1e-9)
                print(
                    f"{self.stats.frames} frames, {self.stats.connections} connections, "
                    f"{rate:.0f} frames/s, {len(self.stats.findings)} findings",
                    flush=True,
                )
            return True
        finally:
            self._checking = False

    def scan_log(self, broker: BrokerProcess) -> None:
        lines = broker.new_log_lines()
        for line in lines:
            if " ERROR " not in line and " CRITICAL " not in line and "Traceback" not in line:
                continue
            port = _PEER.search(line)
            case = self.by_port.get(int(port.group(1))) if port else None
            self.finding("log", line[:2000], [case] if case else list(self.recent)[-20:])

    async def run(self) -> Stats:
        self.out.mkdir(parents=True, exist_ok=True)
        broker = BrokerProcess(self.out / f"broker-{self.seed}.log")
        self._started = time.monotonic()
        try:
            await broker.ready()
            await asyncio.gather(*(self.worker(broker) for _ in range(self.concurrency)))
            await self.check(broker)
            self.stats.broker_rss_kib = broker.rss_kib()
        finally:
            code = broker.stop()
            self.scan_log(broker)
            if code not in (0, None) and not self.stats.findings:
                self.finding("exit", f"broker exited with {code} on SIGTERM", [])
        self.stats.seconds = time.monotonic() - self._started
        return self.stats


async def replay(path: Path, out: Path) -> tuple[list[str], str | None]:
    """Send one saved input to a fresh broker; return the broker's log and the result of
    a round trip afterwards (None: it worked)."""
    out.mkdir(parents=True, exist_ok=True)
    broker = BrokerProcess(out / "replay.log", level="info")
    try:
        await broker.ready()
        parts = decode_parts(path.read_bytes())
        await send_case(broker.port, Case(0, parts, 0, [], False), lambda port: None)
        problem = await round_trip(broker.port)
    finally:
        broker.stop()
    return broker.new_log_lines(), problem


def default_frames() -> int:
    return int(os.environ.get("FUZZ_FRAMES", "1000000"))
