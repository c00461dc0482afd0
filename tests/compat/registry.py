"""The scenario registry and the helpers scenarios share.

A scenario is ``async def name(ctx: Context) -> None``; it drives one or more raw
connections and everything the broker answers lands in ``ctx.t`` (the transcript).
``@scenario(*expect)`` registers it; each ``expect`` is ``(method name, {field: value})``
and must match at least one transcript entry, so that a scenario also asserts on its own
what it is about (for instance that a passive declare of a missing queue gives 404),
whichever broker it runs against.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .context import Context

ScenarioFn = Callable[[Context], Awaitable[None]]
Expectation = tuple[str, dict[str, Any]]


@dataclass
class Scenario:
    name: str
    fn: ScenarioFn
    expect: list[Expectation] = field(default_factory=list)


SCENARIOS: dict[str, Scenario] = {}


def scenario(*expect: Expectation) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        name = fn.__name__
        assert name not in SCENARIOS, f"duplicate scenario {name}"
        SCENARIOS[name] = Scenario(name, fn, list(expect))
        return fn

    return register


def E(name: str, **fields: Any) -> Expectation:
    """An expected transcript entry: method name and a subset of its fields."""
    return (name, fields)


def _plain(value: Any) -> Any:
    """Tuples as lists, as transcripts store them."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def unmet_expectations(
    entries: list[tuple[str, str, dict[str, Any]]], expect: list[Expectation]
) -> list[Expectation]:
    missing = []
    for name, fields in expect:
        if not any(
            what == name and all(got.get(k) == _plain(v) for k, v in fields.items())
            for _who, what, got in entries
        ):
            missing.append((name, fields))
    return missing
