"""CPU time and memory of processes from /proc (Linux), and finding a broker's process
or port.

A process's CPU time is ``utime + stime`` from ``/proc/<pid>/stat`` (all its threads),
in clock ticks (usually 10 ms), converted to seconds.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

__all__ = [
    "cpu_seconds",
    "cpu_seconds_or_none",
    "find_listener_pid",
    "find_rabbitmq_pid",
    "listening_port",
    "machine_busy_seconds",
    "rss_bytes",
]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by ``pid`` (all threads)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = data[data.rindex(b")") + 2 :].split()
    # Fields 14 and 15 of the whole line: utime and stime; here offset by the two removed.
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_seconds_or_none(pid: int | None) -> float | None:
    """:func:`cpu_seconds` of ``pid``; None for no pid or a process that cannot be read."""
    if pid is None:
        return None
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


def _listening_sockets() -> Iterator[tuple[int, str]]:
    """(port, socket inode) of every listening TCP socket (IPv4 and IPv6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A":  # LISTEN
                yield int(local.rsplit(":", 1)[1], 16), inode


def _socket_inodes(pid: int | str) -> set[str]:
    """The inodes of the sockets ``pid`` has open (needs permission to read its fds)."""
    fd_dir = f"/proc/{pid}/fd"
    inodes: set[str] = set()
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def find_listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (needs permission to read its /proc fds)."""
    wanted = {inode for listening, inode in _listening_sockets() if listening == port}
    if not wanted:
        return None
    for name in os.listdir("/proc"):
        if name.isdigit() and not wanted.isdisjoint(_socket_inodes(name)):
            return int(name)
    return None


def listening_port(pid: int) -> int:
    """A TCP port ``pid`` listens on (0 if none yet)."""
    inodes = _socket_inodes(pid)
    for port, inode in _listening_sockets():
        if inode in inodes:
            return port
    return 0


def rss_bytes(pid: int) -> int:
    """The resident memory of ``pid`` (VmRSS in ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def find_rabbitmq_pid(port: int) -> int | None:
    """RabbitMQ's Erlang VM: the listener on ``port`` if visible, else ``pgrep beam.smp``."""
    pid = find_listener_pid(port)
    if pid is not None:
        return pid
    try:
        out = subprocess.run(
            ["pgrep", "-f", "beam.smp"], capture_output=True, text=True, timeout=5
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]) if len(out) == 1 else None


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy so far (``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    # cpu user nice system idle iowait irq softirq steal ...
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK
