"""The scenario matrix: keys, the old keys, selection, payloads and the topic bindings;
which of repeated runs the tables show."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from kiltmq.bench import Options, run
from kiltmq.bench.payloads import PAYLOADS
from kiltmq.bench.results import Report, Result
from kiltmq.bench.scenarios import ALIASES, SCENARIOS, select
from kiltmq.bench.topology import Topology, topic_pattern
from kiltmq.protocol.frames import content_header_payload
from kiltmq.protocol.spec import BasicProperties


def test_every_key_names_its_shape_and_payload() -> None:
    for key, scenario in SCENARIOS.items():
        assert scenario.key == key
        shape, _, payload = key.partition("/")
        assert scenario.title.startswith({"memory-connection": "memory per idle"}.get(shape, ""))
        if payload:
            assert scenario.payload is PAYLOADS[payload]
    for shape in ("e2e-ack", "e2e-noack", "publish", "durable-confirm"):
        assert [k for k in SCENARIOS if k.startswith(shape + "/")] == [
            f"{shape}/{p}" for p in ("100b", "celery", "4k", "64k")
        ]
    assert SCENARIOS["fanout-100/100b"].queues == 100
    assert SCENARIOS["fanout-100/100b"].copies == 100
    assert SCENARIOS["topic-10k/celery"].topic_bindings == 10_000
    assert SCENARIOS["latency-10k/100b"].rate == 10_000


def test_old_keys_and_patterns_select_scenarios_in_table_order() -> None:
    assert select(["e", "a"]) == ("e2e-ack/100b", "latency-1k/100b")
    assert select(["*/64k"]) == tuple(
        f"{s}/64k" for s in ("e2e-ack", "e2e-noack", "publish", "durable-confirm")
    )
    assert select(["latency-10k"]) == ("latency-10k/100b", "latency-10k/celery")
    assert select(["*"]) == tuple(SCENARIOS)
    assert set(ALIASES.values()) <= set(SCENARIOS)
    with pytest.raises(ValueError, match=r"unknown scenario\(s\) nope"):
        select(["a", "nope"])


def test_the_celery_payload_is_what_celery_5_publishes() -> None:
    celery = PAYLOADS["celery"]
    props = celery.properties
    assert (props.content_type, props.content_encoding, props.delivery_mode) == (
        "application/json",
        "utf-8",
        2,
    )
    assert props.correlation_id and props.reply_to
    assert props.headers is not None
    assert list(props.headers) == [
        "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries",
        "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin",
        "ignore_result",
    ]  # fmt: skip
    assert props.headers["timelimit"] == [None, None]
    raw = content_header_payload(60, len(celery.body), props)[12:]
    decoded = BasicProperties.decode(raw)
    assert decoded.headers == props.headers
    assert PAYLOADS["4k"].persistent().delivery_mode == 2
    assert PAYLOADS["4k"].properties.delivery_mode == 1


def _regex(pattern: str) -> re.Pattern[str]:
    words = [{"*": r"[^.]+", "#": r".*"}.get(w, re.escape(w)) for w in pattern.split(".")]
    return re.compile(r"\.".join(words))


def test_each_topic_routing_key_matches_exactly_one_binding() -> None:
    scenario = SCENARIOS["topic-10k/100b"]
    topology = Topology.named(scenario, "t")
    patterns = [topic_pattern(n) for n in range(scenario.topic_bindings)]
    assert len(set(patterns)) == len(patterns)
    regexes = [_regex(p) for p in patterns]
    keys = topology.routing_keys
    assert len(keys) > 1000
    for key in keys[:: len(keys) // 20]:  # a sample: every pattern is tried against each
        assert sum(1 for r in regexes if r.fullmatch(key)) == 1, key


def test_run_takes_old_keys() -> None:
    report = run(Options(only=("b",), seconds=0.2, warmup=0.1, rabbitmq=False))
    assert report.options.only == ("e2e-noack/100b",)
    assert [(r.scenario, r.error) for r in report.results] == [("e2e-noack/100b", None)]


def _run(scenario: str, messages: int, cpu: float) -> Result:
    return Result(target="kiltmq", scenario=scenario, window=1.0, messages=messages,
                  broker_cpu=cpu)


def test_the_run_shown_is_the_median_by_rate_or_for_a_fixed_rate_by_cpu() -> None:
    runs = [
        _run("e2e-ack/100b", 30, 0.3), _run("e2e-ack/100b", 10, 0.2),
        _run("e2e-ack/100b", 20, 0.9),
        _run("latency-1k/100b", 1000, 0.15), _run("latency-1k/100b", 1000, 0.09),
        _run("latency-1k/100b", 1000, 0.10),
    ]
    report = Report(Options(), [], runs, datetime.now(), {})
    shown = report.result("kiltmq", "e2e-ack/100b")
    assert shown is not None and shown.messages == 20
    shown = report.result("kiltmq", "latency-1k/100b")
    assert shown is not None and shown.broker_cpu == 0.10
