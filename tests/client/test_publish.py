"""Publishing: confirms with many in flight, nacks, returns of mandatory messages,
transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kiltmq import BasicProperties, Message, PublishNacked, Unroutable
from kiltmq.client import Channel, Connection


async def test_confirms_many_in_flight(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    await ch.confirm_select()
    assert ch.confirm_mode
    # gather of basic_publish coroutines ...
    await asyncio.wait_for(
        asyncio.gather(*(ch.basic_publish(b"g%d" % i, routing_key=queue) for i in range(500))),
        30,
    )
    # ... and futures from publish_nowait, all in flight at once
    futures = [ch.publish_nowait(b"n%d" % i, routing_key=queue) for i in range(2000)]
    assert ch.unconfirmed_count > 0
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert ch.unconfirmed_count == 0
    assert (await ch.queue_declare(queue, passive=True)).message_count == 2500
    await ch.publish_nowait(b"last", routing_key=queue)
    await ch.wait_for_confirms(timeout=10)


async def test_persistent_publish_confirmed(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("durable")
    await ch.queue_declare(queue, durable=True)
    await ch.confirm_select()
    await ch.basic_publish(
        b"keep me", routing_key=queue, properties=BasicProperties(delivery_mode=2)
    )
    message = await ch.basic_get(queue, no_ack=True)
    assert message is not None and message.properties.delivery_mode == 2
    await ch.queue_delete(queue)


async def test_nack_raises(ch: Channel, unique: Callable[[str], str]) -> None:
    queue = unique("full")
    await ch.queue_declare(
        queue, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await ch.confirm_select()
    await ch.basic_publish(b"fits", routing_key=queue)
    with pytest.raises(PublishNacked):
        await ch.basic_publish(b"does not fit", routing_key=queue)
    # the channel is still usable
    assert (await ch.queue_declare(queue, passive=True)).message_count == 1


async def test_wait_for_confirms_reports_a_settled_nack(
    ch: Channel, unique: Callable[[str], str]
) -> None:
    queue = unique("full")
    await ch.queue_declare(
        queue, exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await ch.confirm_select()
    futures = [ch.publish_nowait(b"m%d" % i, routing_key=queue) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 10)
    assert [isinstance(result, PublishNacked) for result in results] == [False, True, True]
    # every future is settled, yet the nacks since the last call are still reported once
    with pytest.raises(PublishNacked):
        await ch.wait_for_confirms(timeout=10)
    await ch.wait_for_confirms(timeout=10)


async def test_unroutable_mandatory_with_confirms(
    ch: Channel, unique: Callable[[str], str]
) -> None:
    queue = unique("q")
    await ch.queue_declare(queue, exclusive=True)
    await ch.confirm_select()
    returned: list[Message] = []
    ch.on_return.append(returned.append)
    routed = ch.publish_nowait(b"routed", routing_key=queue, mandatory=True)
    lost = ch.publish_nowait(b"nowhere", routing_key=unique("none"), mandatory=True)
    also_routed = ch.publish_nowait(b"routed too", routing_key=queue, mandatory=True)
    await asyncio.wait_for(routed, 10)
    with pytest.raises(Unroutable) as info:
        await asyncio.wait_for(lost, 10)
    await asyncio.wait_for(also_routed, 10)
    assert info.value.message.body == b"nowhere"
    assert info.value.reply_code == 312
    assert [m.body for m in returned] == [b"nowhere"]
    # not mandatory: silently dropped by the broker, confirmed
    await ch.basic_publish(b"dropped", routing_key=unique("none"))


async def test_return_callback_without_confirms(
    ch: Channel, unique: Callable[[str], str]
) -> None:
    got = asyncio.Event()
    returned: list[Message] = []

    def on_return(message: Message) -> None:
        returned.append(message)
        got.set()

    ch.on_return.append(on_return)
    await ch.basic_publish(
        b"bounce",
        routing_key=unique("none"),
        mandatory=True,
        properties=BasicProperties(message_id="m1"),
    )
    await asyncio.wait_for(got.wait(), 10)
    assert returned[0].body == b"bounce"
    assert returned[0].reply_code == 312 and returned[0].reply_text == "NO_ROUTE"
    assert returned[0].properties.message_id == "m1"


async def test_transactions(conn: Connection, unique: Callable[[str], str]) -> None:
    queue = unique("q")
    ch = await conn.channel()
    observer = await conn.channel()
    await ch.queue_declare(queue, exclusive=True)
    await ch.tx_select()
    await ch.basic_publish(b"rolled back", routing_key=queue)
    await ch.tx_rollback()
    await ch.basic_publish(b"committed", routing_key=queue)
    assert (await observer.queue_declare(queue, passive=True)).message_count == 0
    await ch.tx_commit()
    assert (await observer.queue_declare(queue, passive=True)).message_count == 1
    message = await ch.basic_get(queue)
    assert message is not None and message.body == b"committed"
    await message.ack()
    await ch.tx_rollback()  # the ack is undone: the message is back (unacked) ...
    await ch.close()  # ... and requeued when the channel closes
    assert (await observer.queue_declare(queue, passive=True)).message_count == 1
