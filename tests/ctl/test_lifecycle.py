"""The control socket over a broker's life: changes that survive restarts, the socket's
place for memory-only brokers, stale and busy sockets, embedded brokers, the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pika
import pytest
from tests.durability.conftest import BrokerProcess

from kiltmq.broker import Broker
from kiltmq.broker.control import ControlError
from kiltmq.cli.ctl import request

from .conftest import Ctl, connect

pytestmark = pytest.mark.timeout(60)


def test_changes_survive_a_restart_and_the_defaults_do_not_come_back(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    ctl = Ctl(broker)
    try:
        broker.start()
        ctl("add_user", "shop", "kilts")
        ctl("add_vhost", "shop")
        ctl("set_permissions", "-p", "shop", "shop", "^orders", ".*", ".*")
        ctl("delete_user", "guest")  # the first thing to do on a real deployment
        assert broker.stop() == 0
        assert not ctl.socket.exists()  # removed at a clean stop

        broker.start()
        assert [u["user"] for u in ctl.json("list_users")] == ["shop"]
        assert ctl.json("list_permissions", "-p", "shop") == [
            {"user": "shop", "configure": "^orders", "write": ".*", "read": ".*"}
        ]
        assert ctl.json("list_permissions") == []  # shop got nothing on "/"
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            connect(broker.port)  # guest stays deleted
        with contextlib.closing(connect(broker.port, "shop", "kilts", "shop")) as conn:
            conn.channel().queue_declare("orders", durable=True)

        broker.kill()  # leaves a stale socket behind
        assert ctl.socket.exists()
        broker.start()
        assert [q["name"] for q in ctl.json("list_queues", "-p", "shop")] == ["orders"]
    finally:
        broker.close()


def _start_memory_only(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--memory-only"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"ready on \S+:(\d+)", line)
        if found:
            return proc, int(found.group(1))
    proc.kill()
    proc.wait()
    raise AssertionError("the broker did not start: " + "".join(lines))


def test_a_memory_only_broker_is_found_by_its_port(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    proc, port = _start_memory_only(env)
    try:
        socket_path = tmp_path / f"kiltmq-{port}.sock"
        assert socket_path.exists()
        result = subprocess.run(
            [sys.executable, "-m", "kiltmq", "ctl", "--port", str(port), "--json", "status"],
            capture_output=True, text=True, env=env, timeout=30, check=False,
        )
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        assert status["data_dir"] is None and status["ctl_socket"] == str(socket_path)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        proc.stderr.close()
    assert not socket_path.exists()


def test_an_embedded_broker_opens_no_control_socket_unless_asked(tmp_path: Path) -> None:
    with Broker(port=0) as broker:
        assert broker.ctl_path is None
    path = tmp_path / "admin.sock"
    with Broker(port=0, ctl_socket=path) as broker:
        assert broker.ctl_path == path
        # a second broker may not take a socket that a live one listens on
        with pytest.raises(ControlError, match="another broker is listening there"):
            Broker(port=0, ctl_socket=path).start_in_thread()
        assert path.exists()
    assert not path.exists()


async def _exchange(path: Path, *lines: bytes) -> list[Any]:
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 5)
    answers = []
    try:
        for line in lines:
            writer.write(line)
            answers.append(json.loads(await asyncio.wait_for(reader.readline(), 5)))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


async def test_the_protocol_is_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    async with Broker(port=0, ctl_socket=path):
        answers = await _exchange(
            path,
            b'{"command": "list_vhosts"}\n',
            b'{"command": "add_user", "args": {"name": "u", "password": "p"}}\n',
            b'{"command": "set_permissions", "args": {"user": "u", "configure": "",'
            b' "write": "", "read": "^x$"}}\n',
            b'{"command": "list_permissions", "args": {"vhost": "/"}}\n',
            b'{"command": "reboot"}\n',
            b'{"command": "purge_queue", "args": {"name": 7}}\n',
            b"not json\n",
        )
    assert answers == [
        {"ok": True, "result": [{"name": "/"}]},
        {"ok": True, "result": None},
        {"ok": True, "result": None},
        {"ok": True, "result": [
            {"user": "guest", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "u", "configure": "", "write": "", "read": "^x$"},
        ]},
        {"ok": False, "error": "unknown command 'reboot'"},
        {"ok": False, "error": "argument 'name' must be a string"},
        {"ok": False, "error": "a request is one JSON object per line"},
    ]


async def test_new_vhosts_are_open_to_configured_users_when_no_permissions_are(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ctl.sock"
    add = b'{"command": "add_vhost", "args": {"name": "shop"}}\n'
    listing = b'{"command": "list_permissions", "args": {"vhost": "shop"}}\n'
    async with Broker(port=0, users={"app": "pw"}, ctl_socket=path):
        configured = await _exchange(path, add, listing)
    async with Broker(port=0, ctl_socket=path):  # the default guest: as RabbitMQ, nobody
        default = await _exchange(path, add, listing)
    assert configured[1]["result"] == [
        {"user": "app", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    assert default == [{"ok": True, "result": {"created": True}}, {"ok": True, "result": []}]


def test_cleared_permissions_stay_cleared_unless_configured(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    with Broker(port=0, data_dir=tmp_path / "data", ctl_socket=path):
        # answered once the store has written it
        assert request(path, "clear_permissions", {"user": "guest"}, 10) is None
    # started with the defaults again: they are for a new store only
    with Broker(port=0, data_dir=tmp_path / "data") as broker, pytest.raises(
        pika.exceptions.ProbableAccessDeniedError
    ):
        connect(broker.port)
    # configured users with no configured permissions may do everything, at every start
    with Broker(port=0, data_dir=tmp_path / "data", users={"guest": "guest"}) as broker:
        connect(broker.port).close()


def test_a_busy_control_socket_stops_a_second_broker_with_one_line(tmp_path: Path) -> None:
    first = BrokerProcess(tmp_path / "data")
    try:
        first.start()
        socket_path = first.data_dir / "ctl.sock"
        result = subprocess.run(
            [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--memory-only",
             "--ctl-socket", str(socket_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if " INFO " not in line]
        assert errors == [
            f"kiltmq broker: cannot open the control socket {socket_path}: another broker "
            "is listening there"
        ]
        assert Ctl(first).json("status")["pid"] == (first.proc.pid if first.proc else None)
    finally:
        first.close()
