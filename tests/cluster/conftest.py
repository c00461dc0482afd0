"""The 3-node RabbitMQ cluster of ``scripts/rabbitmq-cluster.sh`` for tests marked
``cluster``: found by ``scripts/rabbitmq-cluster.sh status``, skipped when it is not
running (start it with ``scripts/rabbitmq-cluster.sh start``), failed instead when
``KILTMQ_CLUSTER=1`` demands it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-cluster.sh"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("KILTMQ_CLUSTER") == "1":
        pytest.fail(f"KILTMQ_CLUSTER=1 requires the RabbitMQ cluster: {reason}", pytrace=False)
    pytest.skip(f"{reason}; start it with `scripts/{SCRIPT.name} start` (as root)")


class RabbitMQCluster:
    """The cluster's nodes 1-3 (the script's numbering) and their AMQP URLs."""

    def __init__(self, first_port: int) -> None:
        self.ports = [first_port + i for i in range(3)]
        self.urls = [f"amqp://guest:guest@127.0.0.1:{port}/" for port in self.ports]

    def node_of(self, port: int) -> int:
        """The number (1-3) of the node listening on ``port``."""
        return self.ports.index(port) + 1

    async def _script(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "bash", str(SCRIPT), *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise AssertionError(f"{SCRIPT.name} {' '.join(args)} failed: {out.decode()}")
        return out.decode()

    async def kill(self, node: int) -> None:
        """kill -9 one node."""
        await self._script("kill", str(node))

    async def restart(self, node: int) -> None:
        """Start a killed node again; returns once it runs and has rejoined the cluster."""
        await self._script("restart", str(node))

    async def status(self) -> str:
        """One line per node; raises unless all three run clustered."""
        return await self._script("status")

    async def wait_clustered(self, timeout: float) -> str:
        """Wait until all three nodes run and each sees the others (a node that has just
        rejoined may still be seen down for a moment); raises after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    return await self.status()
                except AssertionError:
                    await asyncio.sleep(1)


@pytest.fixture(scope="session")
def rabbitmq_cluster() -> RabbitMQCluster:
    """The running 3-node cluster (``KILTMQ_CLUSTER_PORT``: its first AMQP port, 5681)."""
    if os.geteuid() != 0:
        _unavailable("killing and restarting cluster nodes needs root")
    deadline = time.monotonic() + 120
    while True:
        try:
            result = subprocess.run(
                ["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _unavailable(f"{SCRIPT.name} status failed: {exc}")
        # 1 with every node running: not all see each other yet (one that has just
        # rejoined may still be seen down for a moment); a node down, or 3: none runs.
        down = " down" in result.stdout
        if result.returncode != 1 or down or time.monotonic() > deadline:
            break
        time.sleep(1)
    if result.returncode != 0:
        state = "; ".join(result.stdout.splitlines()) or result.stderr.strip()
        _unavailable(f"the 3-node RabbitMQ cluster is not running ({state})")
    return RabbitMQCluster(int(os.environ.get("KILTMQ_CLUSTER_PORT", "5681")))
