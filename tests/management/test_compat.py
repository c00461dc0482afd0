"""The same HTTP conversation with RabbitMQ's management API and kiltmq's: the same
status codes, error bodies, keys and values clients read."""

from __future__ import annotations

import pytest

from kiltmq.broker import Broker

from . import conversation
from .api import Api


@pytest.mark.rabbitmq
def test_the_conversation_goes_as_with_rabbitmq(
    rabbit: Api, kilt: Api, kilt_broker: Broker
) -> None:
    theirs = conversation.run(rabbit, 5672)
    ours = conversation.run(kilt, kilt_broker.port)
    assert [s[0] for s in theirs] == [s[0] for s in ours]
    problems = conversation.differences(theirs, ours)
    assert not problems, "\n".join(problems)
