"""The event loop kiltmq's programs make: uvloop's when it is installed, unless turned off.

The broker command, ``kiltmq bench`` and the client's blocking facade make their loops
here. ``KILTMQ_UVLOOP=0`` (or ``false``, ``no``, ``off``) in the environment turns uvloop
off; ``KILTMQ_UVLOOP=1`` requires it. A program's own option (``--no-uvloop``,
``--uvloop``) is passed as ``setting`` and overrides the environment. Imports nothing of
kiltmq, so the broker and the client can both use it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "ENV",
    "loop_factory",
    "loop_name",
    "new_event_loop",
    "run",
    "wants_uvloop",
    "writes_vectors",
]

ENV = "KILTMQ_UVLOOP"

_T = TypeVar("_T")
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def _installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def wants_uvloop(setting: bool | None = None) -> bool:
    """Whether to run on uvloop: ``setting`` if given, else ``KILTMQ_UVLOOP``, else whether
    uvloop is installed. ValueError for a bad variable, RuntimeError when uvloop is
    required but not installed."""
    if setting is None:
        value = os.environ.get(ENV, "").strip().lower()
        if not value:
            return _installed()
        if value in _OFF:
            return False
        if value not in _ON:
            raise ValueError(f"{ENV} must be 0 or 1, not {value!r}")
        setting = True
    if setting and not _installed():
        raise RuntimeError("uvloop is not installed (pip install uvloop, or kiltmq[fast])")
    return setting


def loop_factory(setting: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop: ``uvloop.new_event_loop`` or ``asyncio.new_event_loop``."""
    if wants_uvloop(setting):
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def new_event_loop(setting: bool | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop of the kind :func:`wants_uvloop` chooses."""
    return loop_factory(setting)()


def run(main: Coroutine[Any, Any, _T], *, uvloop: bool | None = None) -> _T:
    """:func:`asyncio.run` on the loop :func:`wants_uvloop` chooses."""
    with asyncio.Runner(loop_factory=loop_factory(uvloop)) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``: the kind of ``loop``."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def writes_vectors(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport.writelines`` writes its buffers without joining them: uvloop's
    transports do (one ``writev``); asyncio's (Python 3.11) join them first."""
    return type(transport).__module__.startswith("uvloop")
