"""A transport that records what it is given to write, for tests of what reaches the
socket unjoined."""

from __future__ import annotations

from typing import Any

#: One entry per call: ``("write", [data])`` or ``("writelines", parts)``.
Calls = list[tuple[str, list[object]]]


class WriteSpy:
    """Wraps a transport: records each ``write`` and ``writelines`` in ``calls``, then
    passes it on; everything else is the transport's."""

    def __init__(self, transport: Any, calls: Calls) -> None:
        self._transport = transport
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append(("write", [data]))
        self._transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        self._calls.append(("writelines", list(parts)))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def pieces(calls: Calls) -> list[object]:
    """Every object written, in order."""
    return [piece for _kind, written in calls for piece in written]
