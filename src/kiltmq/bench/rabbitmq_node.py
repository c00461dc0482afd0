"""A fresh RabbitMQ node of its own for each memory run of the benchmark.

A long-running node's memory rises and falls with what ran before it (the Erlang VM gives
freed memory back late), so growth read around a memory run there means little. When
Debian's ``rabbitmq-server`` is installed and this process may run it (as root or as the
``rabbitmq`` user), :func:`rabbitmq_node` starts a node as the ``rabbitmq`` user with its own
name (``kiltbench-<pid>-<n>@HOST``), free AMQP and Erlang distribution ports on 127.0.0.1,
and every file it writes (data, logs, feature flags, configuration) in a temporary
directory; no plugins unless ``management`` (then the management and Prometheus plugins on
free ports). It shares the ``rabbitmq`` user's Erlang cookie and the host's ``epmd``. The
node is stopped by its process id (SIGTERM, SIGKILL after 60 s) and its directory deleted.

The node's memory is the resident memory of its Erlang VM, the ``beam.smp`` process whose
id the node writes to its pid file; ``erl_child_setup`` (a small helper the VM starts,
whose memory does not grow with messages or connections) and ``epmd`` (one per host,
shared by every node) are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from kiltmq.bench.loadclient import connect

__all__ = ["BOOT_TIMEOUT", "SERVER", "USER", "Node", "rabbitmq_node", "unavailable"]

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
"""Debian's script that runs a RabbitMQ node in the foreground."""

USER = "rabbitmq"
"""The user a node runs as (its home holds the Erlang cookie)."""

BOOT_TIMEOUT = 180.0
"""Seconds a node may take to answer AMQP (10-15 s on an idle 2-core machine)."""

_STOP_TIMEOUT = 60.0
_counter = itertools.count(1)


@dataclass
class Node:
    """A node started by :func:`rabbitmq_node`."""

    name: str
    url: str
    pid: int | None = None  # its Erlang VM, once it answers
    error: str | None = None
    directory: str = ""  # where its files are, deleted when it stops


def unavailable(server: str | None = None, user: str = USER) -> str | None:
    """Why a fresh node cannot be started here (``server``: :data:`SERVER`), or None if
    it can."""
    server = server or SERVER
    if not os.access(server, os.X_OK):
        return f"{server} is not installed"
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return f"there is no {user} user"
    if os.geteuid() not in (0, uid):
        return f"starting a RabbitMQ node needs root or the {user} user"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host() -> str:
    """The host part of node names, as ``rabbitmqctl`` and the cluster script use it."""
    short = socket.gethostname().split(".")[0]
    try:
        socket.gethostbyname(short)
    except OSError:
        return "localhost"
    return short


def _node_pid(pid_file: str, node: str) -> int | None:
    """The node's Erlang VM if its pid file names a live process of that node."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if f"RABBITMQ_NODENAME={node}".encode() in environ else None


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _files(base: str, node: str, management: bool) -> dict[str, str]:
    """Create the node's directories and configuration; its environment variables."""
    for sub in ("mnesia", "log", "plugins-expand", "quorum", "stream"):
        os.mkdir(os.path.join(base, sub))
    plugins = "[rabbitmq_management,rabbitmq_prometheus]." if management else "[]."
    _write(os.path.join(base, "enabled_plugins"), plugins + "\n")
    conf = ""
    if management:
        conf = (
            f"management.tcp.port = {_free_port()}\n"
            f"management.tcp.ip = 127.0.0.1\n"
            f"prometheus.tcp.port = {_free_port()}\n"
            f"prometheus.tcp.ip = 127.0.0.1\n"
        )
    _write(os.path.join(base, "rabbitmq.conf"), conf)
    _write(os.path.join(base, "rabbitmq-env.conf"), "")
    _write(os.path.join(base, "advanced.config"), "[].\n")
    name = node.split("@")[0]
    return {
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(_free_port()),
        "RABBITMQ_DIST_PORT": str(_free_port()),
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
        "RABBITMQ_PID_FILE": os.path.join(base, f"{name}.pid"),
    }


def _chown_tree(base: str, uid: int, gid: int) -> None:
    os.chown(base, uid, gid)
    for root, dirs, files in os.walk(base):
        for entry in dirs + files:
            os.chown(os.path.join(root, entry), uid, gid)


async def _answers(url: str) -> bool:
    try:
        client = await connect(url, timeout=5)
    except Exception:  # refused, reset or closed while the node still boots
        return False
    await client.close()
    return True


def _log_tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def _stop(pid: int | None, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the node's VM (the script in front of it then exits), SIGKILL if it
    has not stopped within a minute."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    elif proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        for victim in (pid, proc.pid):
            if victim is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + _STOP_TIMEOUT
    while pid is not None and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)


@contextlib.contextmanager
def rabbitmq_node(
    *, management: bool = False, server: str | None = None, user: str = USER
) -> Iterator[Node]:
    """Start a fresh node, wait until it answers AMQP, yield it (its ``error`` says why if
    it did not start); stop it and delete its files afterwards."""
    server = server or SERVER
    reason = unavailable(server, user)
    if reason is not None:
        yield Node("", "", error=f"cannot start a RabbitMQ node: {reason}")
        return
    account = pwd.getpwnam(user)
    node = f"kiltbench-{os.getpid()}-{next(_counter)}@{_host()}"
    base = tempfile.mkdtemp(prefix="kiltbench-rabbitmq-")
    try:
        env = _files(base, node, management)
        _chown_tree(base, account.pw_uid, account.pw_gid)
        env.update(
            HOME=account.pw_dir, PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8"
        )
        url = f"amqp://guest:guest@127.0.0.1:{env['RABBITMQ_NODE_PORT']}/"
        started = Node(node, url, directory=base)
        switch = os.geteuid() != account.pw_uid
        console = os.path.join(base, "log", "console.log")
        with open(console, "wb") as out:
            proc = subprocess.Popen(
                [server],
                cwd=base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=account.pw_uid if switch else None,
                group=account.pw_gid if switch else None,
                extra_groups=[] if switch else None,
            )
        pid: int | None = None
        try:
            deadline = time.monotonic() + BOOT_TIMEOUT
            while True:
                pid = pid or _node_pid(env["RABBITMQ_PID_FILE"], node)
                if pid is not None and asyncio.run(_answers(url)):
                    started.pid = pid
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = (
                        "exited" if proc.poll() is not None else f"no answer in {BOOT_TIMEOUT:g} s"
                    )
                    started.error = (
                        f"RabbitMQ node {node} did not start ({why}): {_log_tail(console)}"
                    )
                    break
                time.sleep(0.25)
            yield started
        finally:
            _stop(pid or _node_pid(env["RABBITMQ_PID_FILE"], node), proc)
    finally:
        shutil.rmtree(base, ignore_errors=True)
