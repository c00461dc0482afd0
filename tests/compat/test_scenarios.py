"""RabbitMQ compatibility: the same scenarios against RabbitMQ and kiltmq, same replies.

Every scenario (see ``sc_*.py``) drives raw AMQP connections made of the sans-IO protocol
core (the shared raw client, ``recording.py``) and yields a normalized transcript: the
methods the broker answered with, their fields (reply codes, reply texts, class and method
ids, message counts, delivery tags, bodies ...), which channel or connection they came on,
and whether the server dropped the socket without a connection.close. The test runs a
scenario on RabbitMQ and on an embedded kiltmq broker and asserts the two transcripts are
equal.

Normalization: the scenario's unique name prefix is removed from every name and text;
server-generated names (``amq.gen-*``, ``amq.ctag-*``) are numbered in order of
appearance; publisher confirms are compared as the set of settled tags (brokers coalesce
``multiple`` acks differently); long bodies by size and digest; the reply text of
connection errors for broken framing and protocol violations (501-505, 540), which in
RabbitMQ quotes Erlang internals, by its reply-code name only; an Erlang binary quoted in
a text (``<<"most">>``) as a plain quoted string (``'most'``); the ``time`` of ``x-death``
records is dropped (its field type is kept: each delivery's headers are recorded with
their field type codes too, ``header_types``, since ``I`` and ``l`` decode the same).
Everything else, including the reply text of channel errors, must match exactly. Queue
counts are read only after publisher confirms settled, since RabbitMQ's queue.declare-ok
may not count messages still in flight.

Recorded against RabbitMQ 3.10.8 (Debian package). Where RabbitMQ differs from the spec
text the scenarios follow RabbitMQ, for instance: a connection.start-ok naming an unknown
mechanism, a tune-ok outside the server's limits, a channel method before connection.open
and an unknown class or method id all make RabbitMQ drop the socket without a
connection.close; a heartbeat frame on a non-zero channel is 505; channel_max limits the
number of open channels (530), not the channel numbers; basic.recover with requeue=false,
basic.qos with a prefetch_size and channel.flow with active=false are 540.

Each scenario also lists entries it expects (``@scenario(E(...))``), checked on both
brokers, so it asserts what it is about even when only RabbitMQ can be compared.

The scenarios of a session run concurrently (each on its own names), once per broker:
RabbitMQ waits 3 s before dropping a connection that failed its handshake, and running them
one after another would make the suite slow for no information.
"""

from __future__ import annotations

import asyncio

import pytest

from . import scenarios  # noqa: F401  (registers the scenarios)
from .registry import SCENARIOS, Scenario, unmet_expectations
from .runner import run_scenario
from .transcript import Transcript

CONCURRENCY = 16
SUITE_TIMEOUT = 120.0


def selected_scenarios(session: pytest.Session) -> list[str]:
    """The scenario names of the tests selected in this session."""
    names = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if item.name.startswith("test_same_as_rabbitmq[") and callspec is not None:
            names.append(callspec.params["name"])
    return names or sorted(SCENARIOS)


async def run_all(names: list[str], url: str) -> dict[str, Transcript]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str) -> tuple[str, Transcript]:
        async with limit:
            return name, await run_scenario(SCENARIOS[name], url)

    done = await asyncio.wait_for(asyncio.gather(*(one(n) for n in names)), SUITE_TIMEOUT)
    return dict(done)


@pytest.fixture(scope="session")
def rabbitmq_transcripts(
    rabbitmq_url: str, request: pytest.FixtureRequest
) -> dict[str, Transcript]:
    return asyncio.run(run_all(selected_scenarios(request.session), rabbitmq_url))


@pytest.fixture(scope="session")
def kiltmq_transcripts(kiltmq_url: str, request: pytest.FixtureRequest) -> dict[str, Transcript]:
    return asyncio.run(run_all(selected_scenarios(request.session), kiltmq_url))


def check_expectations(sc: Scenario, broker: str, transcript: Transcript) -> None:
    aborted = [e for e in transcript.entries if e[1] in ("ABORTED", "TIMEOUT")]
    assert not aborted, f"{broker}: scenario {sc.name} did not finish:\n{transcript.text()}"
    missing = unmet_expectations(transcript.entries, sc.expect)
    assert not missing, (
        f"{broker}: scenario {sc.name} lacks the expected entries {missing}; "
        f"transcript:\n{transcript.text()}"
    )


@pytest.mark.rabbitmq
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_as_rabbitmq(
    name: str, rabbitmq_transcripts: dict[str, Transcript], request: pytest.FixtureRequest
) -> None:
    sc = SCENARIOS[name]
    rabbit = rabbitmq_transcripts[name]
    check_expectations(sc, "RabbitMQ", rabbit)
    kilt = request.getfixturevalue("kiltmq_transcripts")[name]
    check_expectations(sc, "kiltmq", kilt)
    assert kilt.entries == rabbit.entries, (
        f"kiltmq differs from RabbitMQ in {name}:\n--- RabbitMQ\n{rabbit.text()}\n"
        f"--- kiltmq\n{kilt.text()}"
    )
