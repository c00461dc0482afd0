"""Per-user limits (``max-connections``, ``max-channels``): the same raw AMQP steps
against RabbitMQ (limits set with ``rabbitmqctl set_user_limits``) and kiltmq (through
its admin interface), each with a user and vhosts of the test's own; the transcripts,
refusals with their reply codes, texts and method ids included, must be equal.

RabbitMQ counts a user's connections and channels asynchronously, so the steps only
rely on counts after a round trip with the broker, and lower limits to 0 (refused
whatever the count) after connections closed."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin

from .context import Context
from .policy_admin import rabbitmq_api, rabbitmq_api_available
from .registry import E, unmet_expectations
from .runner import TEXT_RULES
from .transcript import Transcript

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(120)]

SetLimits = Callable[[str, dict[str, int]], Awaitable[None]]


@dataclass
class Target:
    """One broker as the scenario sees it: an AMQP URL of the user's, the user, a vhost
    the user may not use (``closed``), one it may use with a vhost limit of 0
    (``full``), and how to set the user's limits (or, given a vhost, that vhost's)."""

    url: str
    user: str
    closed: str
    full: str
    set_limits: SetLimits
    broker: Broker | None = None


def _names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"kiltmq-limited-{tag}", f"kiltmq-closed-{tag}", f"kiltmq-full-{tag}"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def rabbit(rabbitmq_url: str) -> Iterator[Target]:
    rabbitmq_api_available()
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to set RabbitMQ's user limits")
    user, closed, full = _names()
    try:
        for vhost in (closed, full):
            assert rabbitmq_api("PUT", f"/vhosts/{vhost}", {})[0] in (201, 204)
        assert rabbitmq_api("PUT", f"/users/{user}", {"password": "pw", "tags": ""})[0] == 201
        for vhost in ("%2F", full):
            assert rabbitmq_api("PUT", f"/permissions/{vhost}/{user}",
                                {"configure": ".*", "write": ".*", "read": ".*"})[0] == 201
        _rabbitmqctl("set_vhost_limits", "-p", full, '{"max-connections": 0}')

        async def set_limits(who: str, limits: dict[str, int]) -> None:
            await asyncio.to_thread(_rabbitmqctl, "set_user_limits", who, json.dumps(limits))

        parts = urlsplit(rabbitmq_url)
        yield Target(f"amqp://{user}:pw@{parts.hostname}:{parts.port or 5672}",
                     user, closed, full, set_limits)
    finally:
        rabbitmq_api("DELETE", f"/users/{user}")
        for vhost in (closed, full):
            rabbitmq_api("DELETE", f"/vhosts/{vhost}")


@pytest.fixture
def kilt() -> Iterator[Target]:
    user, closed, full = _names()
    with Broker(port=0) as broker:
        admin = Admin(broker)

        def define() -> None:
            admin.add_user(user, "pw")
            admin.add_vhost(closed, users=[])
            admin.add_vhost(full, users=[user])
            admin.set_permissions(user, "/", ".*", ".*", ".*")
            admin.set_vhost_limits(full, {"max-connections": 0})

        broker.call_in_loop(define)

        async def set_limits(who: str, limits: dict[str, int]) -> None:
            await asyncio.to_thread(broker.call_in_loop, admin.set_user_limits, who, limits)

        yield Target(f"amqp://{user}:pw@127.0.0.1:{broker.port}", user, closed, full,
                     set_limits, broker)


async def _scenario(ctx: Context, target: Target) -> None:
    await target.set_limits(target.user, {"max-connections": 2, "max-channels": 2})
    c1 = await ctx.connect("c1")
    await c1.channel(record=True)
    c2 = await ctx.connect("c2")
    await c2.channel(record=True)
    await ctx.connect("c3", record=True)  # a third connection: refused at open
    await c2.channel(record=True)  # a third channel: the connection is closed
    await c2.wait_eof()
    await c1.close()
    # set_user_limits keeps the limits it does not name; 0 refuses whatever the count
    await target.set_limits(target.user, {"max-connections": 0})
    # a missing vhost comes first, then the user's limit, then access to the vhost
    for label, vhost in (("c4", "/"), ("no-access", target.closed), ("no-vhost", "nowhere")):
        await ctx.connect(label, vhost=vhost, record=True)
    await target.set_limits(target.user, {"max-connections": -1, "max-channels": 0})
    await ctx.connect("full-vhost", vhost=target.full, record=True)  # the vhost's first
    c5 = await ctx.connect("c5", record=True)
    await c5.channel(record=True)
    await c5.wait_eof()
    await target.set_limits(target.user, {"max-channels": -1})
    c6 = await ctx.connect("c6", record=True)
    for _ in range(3):
        await c6.channel(record=True)
    await c6.close()


async def _run(target: Target) -> Transcript:
    rules = [(re.escape(target.user), "USER"), (re.escape(target.closed), "CLOSED"),
             (re.escape(target.full), "FULL"), *TEXT_RULES]
    ctx = Context(f"{target.url}/{quote('/', safe='')}", rules)
    try:
        await asyncio.wait_for(_scenario(ctx, target), 60)
    finally:
        await ctx.cleanup()
    return ctx.t


EXPECT = [
    E("connection.close", reply_code=530, class_id=10, method_id=40,
      reply_text="NOT_ALLOWED - connection refused for user 'USER': "
                 "user connection limit (2) is reached"),
    E("connection.close", reply_code=530, class_id=0, method_id=0,
      reply_text="NOT_ALLOWED - number of channels opened for user 'USER' has reached "
                 "the maximum allowed user limit of (2)"),
    E("connection.close", reply_code=530,
      reply_text="NOT_ALLOWED - access to vhost 'FULL' refused for user 'USER': "
                 "connection limit (0) is reached"),
    E("connection.close", reply_code=530, class_id=0, method_id=0,
      reply_text="NOT_ALLOWED - number of channels opened for user 'USER' has reached "
                 "the maximum allowed user limit of (0)"),
]


def test_user_limits_same_as_rabbitmq(rabbit: Target, kilt: Target) -> None:
    expected = asyncio.run(_run(rabbit))
    assert not unmet_expectations(expected.entries, EXPECT), expected.text()
    refused = [e[0] for e in expected.entries if "user connection limit (0)" in str(e[2])]
    assert refused == ["c4", "no-access"], expected.text()
    got = asyncio.run(_run(kilt))
    assert got.entries == expected.entries, (
        f"--- RabbitMQ\n{expected.text()}\n--- kiltmq\n{got.text()}"
    )


def test_the_counts_go_down_as_connections_and_channels_close(kilt: Target) -> None:
    """Closed channels and connections (closed by the client, by the broker, or lost)
    make room again."""

    async def steps() -> None:
        await kilt.set_limits(kilt.user, {"max-connections": 1, "max-channels": 1})
        ctx = Context(f"{kilt.url}/%2F", TEXT_RULES)
        try:
            for _ in range(3):
                conn = await ctx.connect()
                channel = await conn.channel()
                await channel.close()
                await conn.channel()
                await conn.close()
            conn = await ctx.connect()
            await conn.channel()
            await conn.channel(record=True)  # over the limit: closed by the broker
            await conn.wait_eof()
            lost = await ctx.connect()
            await lost.channel()
            lost.abort()
            broker = kilt.broker
            assert broker is not None
            while await asyncio.to_thread(
                broker.call_in_loop, lambda: kilt.user in broker.user_usage.connections
            ):
                await asyncio.sleep(0.01)  # until the broker has seen the socket go
            assert await asyncio.to_thread(
                broker.call_in_loop, lambda: dict(broker.user_usage.channels)
            ) == {}
            again = await ctx.connect()
            await again.channel()
        finally:
            await ctx.cleanup()

    asyncio.run(steps())
