"""Choosing the event loop: uvloop when installed, unless KILTMQ_UVLOOP or an option says no."""

from __future__ import annotations

import asyncio

import pytest

from kiltmq import event_loop


async def _kind() -> str:
    return event_loop.loop_name(asyncio.get_running_loop())


def test_uvloop_by_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.wants_uvloop()
    assert event_loop.run(_kind()) == "uvloop"
    loop = event_loop.new_event_loop()
    try:
        assert event_loop.loop_name(loop) == "uvloop"
    finally:
        loop.close()


@pytest.mark.parametrize("value", ["0", "false", "No", "off"])
def test_the_environment_turns_it_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(event_loop.ENV, value)
    assert not event_loop.wants_uvloop()
    assert event_loop.run(_kind()) == "asyncio"


def test_an_option_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.setenv(event_loop.ENV, "0")
    assert event_loop.run(_kind(), uvloop=True) == "uvloop"
    monkeypatch.setenv(event_loop.ENV, "1")
    assert event_loop.run(_kind(), uvloop=False) == "asyncio"


def test_a_bad_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "maybe")
    with pytest.raises(ValueError, match="KILTMQ_UVLOOP must be 0 or 1"):
        event_loop.wants_uvloop()
