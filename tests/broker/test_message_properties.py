"""Checking and reading a published message's properties without decoding them all.

``check_properties`` refuses exactly what ``BasicProperties.decode`` refuses; the
properties the broker reads itself (reply-to, expiration, user-id, priority) come from the
raw bytes and agree with the decoded ones.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.protocol.malformed import MALFORMED
from tests.protocol.strategies import SETTINGS, properties
from tests.protocol.test_skip_table import corrupt

from kiltmq.bench.rawclient import RawClient
from kiltmq.broker import Broker
from kiltmq.broker.message import (
    FLAG_EXPIRATION,
    FLAG_REPLY_TO,
    FLAG_USER_ID,
    Message,
    check_properties,
)
from kiltmq.protocol import spec

pytestmark = pytest.mark.timeout(120)

CELERY = spec.BasicProperties(
    content_type="application/json",
    content_encoding="utf-8",
    correlation_id="4a8e7c1e-0b5c-4f36-9a57-0c2d7e0a6f11",
    reply_to="c5a8e2f0-9d5e-3b41-a2c7-5f1e8d0b6a93",
    delivery_mode=2,
    priority=0,
    headers={
        "lang": "py", "task": "proj.tasks.add", "id": "4a8e", "shadow": None, "eta": None,
        "expires": None, "group": None, "retries": 0, "timelimit": [None, None],
        "root_id": "4a8e", "parent_id": None, "argsrepr": "(2, 2)", "kwargsrepr": "{}",
    },
)


def _accepted(fn: Any, raw: bytes) -> bool:
    try:
        fn(raw)
    except MALFORMED:
        return False
    return True


@SETTINGS
@given(properties(), st.integers(0, 2**32 - 1))
def test_check_refuses_exactly_what_decoding_refuses(
    props: spec.BasicProperties, seed: int
) -> None:
    raw = props.encode()
    assert _accepted(check_properties, raw)
    rng = random.Random(seed)
    for _ in range(20):
        bad = corrupt(raw, rng)
        if rng.random() < 0.2 and len(bad) >= 2:  # continuation flag words
            bad = bytes((bad[0], bad[1] | 1)) + bad[2:]
        assert _accepted(check_properties, bad) == _accepted(spec.BasicProperties.decode, bad), (
            bad.hex()
        )


@SETTINGS
@given(properties())
def test_properties_read_from_the_raw_bytes_agree_with_decoding(
    props: spec.BasicProperties,
) -> None:
    message = Message("", "q", props.encode(), b"body")
    decoded = spec.BasicProperties.decode(message.raw_properties)
    assert message.shortstr(FLAG_REPLY_TO) == decoded.reply_to
    assert message.shortstr(FLAG_EXPIRATION) == decoded.expiration
    assert message.user_id() == decoded.user_id
    assert message.priority() == decoded.priority
    assert message._properties is None  # nothing above decoded them all


def test_continuation_flag_words_are_skipped() -> None:
    raw = b"\x02\x01" + b"\x00\x01" + b"\x00\x00" + b"\x03abc"  # reply-to after two more words
    message = Message("", "q", raw, b"")
    message.check()
    assert message.shortstr(FLAG_REPLY_TO) == "abc" == spec.BasicProperties.decode(raw).reply_to
    assert not _accepted(check_properties, raw[:5])


def test_a_name_that_is_not_utf8_reads_as_decoding_reads_it() -> None:
    raw = b"\x00\x10\x02\xff\xfe"  # user-id
    message = Message("", "q", raw, b"")
    assert message.shortstr(FLAG_USER_ID) == spec.BasicProperties.decode(raw).user_id


async def test_a_celery_message_is_queued_with_its_properties_undecoded(
    abroker: Broker,
) -> None:
    """Publishing checks a headers table without decoding it; the queued message keeps
    only its raw properties, which a consumer gets back byte for byte."""
    client = await RawClient.connect(abroker.port)
    await client.open_channel(1)
    await client.call(1, spec.QueueDeclare("celery"))
    client.publish(1, "", "celery", b"{}" * 200, CELERY)
    ok = await client.call(1, spec.QueueDeclare("celery", passive=True))
    assert isinstance(ok, spec.QueueDeclareOk) and ok.message_count == 1

    message = next(iter(abroker.vhosts["/"].queues["celery"].ready)).message
    assert message._properties is None
    assert message.raw_properties == CELERY.encode()
    await client.disconnect()
