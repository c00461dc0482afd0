"""Run one scenario against one broker and return its transcript."""

from __future__ import annotations

import asyncio

from .context import Context
from .recording import ScenarioAborted
from .registry import Scenario
from .transcript import Transcript

SCENARIO_TIMEOUT = 30.0

# Reply texts of connection errors for broken framing and protocol violations carry
# RabbitMQ's internal (Erlang) details: only their reply-code name is compared.
TEXT_RULES: list[tuple[str, str]] = [
    (
        r"^(FRAME_ERROR|SYNTAX_ERROR|COMMAND_INVALID|CHANNEL_ERROR|UNEXPECTED_FRAME"
        r"|NOT_IMPLEMENTED) - .*$",
        r"\1 - ...",
    ),
    # Erlang binaries quoted in texts (<<"most">>) compare as plain quoted strings.
    (r'<<"(.*?)">>', r"'\1'"),
]


async def run_scenario(sc: Scenario, url: str) -> Transcript:
    ctx = Context(url, TEXT_RULES)
    try:
        await asyncio.wait_for(sc.fn(ctx), SCENARIO_TIMEOUT)
    except ScenarioAborted as exc:
        ctx.t.add("runner", "ABORTED", {"reason": str(exc)})
    except TimeoutError:
        ctx.t.add("runner", "ABORTED", {"reason": f"scenario took over {SCENARIO_TIMEOUT} s"})
    finally:
        await ctx.cleanup()
    return ctx.t
