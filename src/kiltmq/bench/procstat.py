"""CPU time of processes from /proc (Linux), and finding a broker's process.

A process's CPU time is ``utime + stime`` from ``/proc/<pid>/stat`` (all its threads),
in clock ticks (usually 10 ms), converted to seconds.
"""

from __future__ import annotations

import os
import subprocess

__all__ = [
    "cpu_seconds",
    "cpu_seconds_or_none",
    "find_listener_pid",
    "find_rabbitmq_pid",
    "machine_busy_seconds",
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


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def find_listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (needs permission to read its /proc fds)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fd_dir = f"/proc/{name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in wanted:
                    return int(name)
            except OSError:
                continue
    return None


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
