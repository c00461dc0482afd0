"""Testing helpers for users of kiltmq: an embedded broker with a backdoor for tests.

The pytest plugin (:mod:`kiltmq.testing.plugin`, loaded automatically once kiltmq is
installed) provides the fixtures ``amqp_broker`` and ``amqp_url``; outside pytest,
``with BrokerFixture.start() as amqp_broker:`` gives the same object. See docs/testing.md.
"""

from kiltmq.broker.admin import BindingInfo, ConnectionInfo, ConsumerInfo, ExchangeInfo
from kiltmq.testing.clock import ControlledClock
from kiltmq.testing.fixture import OWN_VHOST, BrokerFixture
from kiltmq.testing.frames import FrameInfo
from kiltmq.testing.published import PublishedInfo
from kiltmq.testing.snapshots import MessageInfo, QueueInfo
from kiltmq.testing.topology import Topology

__all__ = [
    "OWN_VHOST",
    "BindingInfo",
    "BrokerFixture",
    "ConnectionInfo",
    "ConsumerInfo",
    "ControlledClock",
    "ExchangeInfo",
    "FrameInfo",
    "MessageInfo",
    "PublishedInfo",
    "QueueInfo",
    "Topology",
]
