"""One AMQP channel on the broker side: its consumers, unacknowledged deliveries,
prefetch, publisher confirms and transactions, and the handlers of the class 40-90
methods (exchange, queue, basic, confirm, tx).

Handlers raise :mod:`kiltmq.protocol.errors` exceptions; the session turns a soft error
into channel.close and a hard one into connection.close (see :mod:`kiltmq.broker.session`).

:class:`Channel` is put together from one part per concern, each a class in its own
module, bottom-up:

- :mod:`.owner`: what a channel needs from its session and connection (protocols);
- :mod:`.state`: the channel's state, replies, permission checks;
- :mod:`.reply_target`, :mod:`.reply_to`: direct reply-to;
- :mod:`.declarations`: the exchange and queue classes;
- :mod:`.publishing`: basic.publish and publisher confirms;
- :mod:`.consuming`: consumers, basic.qos, deliveries, basic.get;
- :mod:`.settlement`: ack, nack, reject, recover;
- :mod:`.transactions`: the tx class;
- :mod:`.channel`: dispatch, channel.flow and close.

The parts are mixins of one object rather than collaborators: they share the channel's
state (delivery tags, unacked deliveries, prefetch counters, the transaction) and the hot
paths (:meth:`Channel.publish`, :meth:`Channel.deliver`) stay single method calls on it.
"""

from kiltmq.broker.channel.channel import Channel
from kiltmq.broker.channel.owner import ChannelConnection, ChannelSession
from kiltmq.broker.channel.state import Unacked
from kiltmq.broker.reply_target import REPLY_PREFIX, REPLY_TO, ReplyTarget, Target

__all__ = [
    "REPLY_PREFIX",
    "REPLY_TO",
    "Channel",
    "ChannelConnection",
    "ChannelSession",
    "ReplyTarget",
    "Target",
    "Unacked",
]
