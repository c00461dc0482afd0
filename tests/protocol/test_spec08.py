"""The AMQP 0-8 tables (spec08.py), as RabbitMQ 3.10 serves 0-8 (checked with raw frames
against it): 0-8 methods share the 0-9-1 classes where the wire layout is the same."""

from __future__ import annotations

from kiltmq.protocol import spec, spec08


def test_methods_with_the_0_9_1_layout_are_the_0_9_1_classes() -> None:
    assert spec08.METHODS[spec.QueueDeclare.INDEX] is spec.QueueDeclare
    assert spec08.METHODS[spec.BasicPublish.INDEX] is spec.BasicPublish
    # 0-8's connection.open has capabilities and insist where 0-9-1 has reserved fields
    assert spec08.DEFINITIONS[spec.ConnectionOpen.INDEX].wire_fields == (
        ("virtual-host", "shortstr"),
        ("capabilities", "shortstr"),
        ("insist", "bit"),
    )
    assert spec08.METHODS[spec.ConnectionOpen.INDEX] is spec.ConnectionOpen
    # the ticket of 0-8 is 0-9-1's reserved-1
    assert spec08.DEFINITIONS[spec.QueueBind.INDEX].wire_fields[0] == ("ticket", "short")


def test_rabbitmq_additions() -> None:
    """RabbitMQ 3.10 answers queue.unbind with unbind-ok (50, 51), basic.recover (60, 110)
    with recover-ok (60, 111), and nothing to the 0-8 spec's basic.recover (60, 100), which
    requeues like 0-9-1's basic.recover-async."""
    assert spec08.METHODS[spec.QueueUnbind.INDEX] is spec.QueueUnbind
    assert spec08.METHODS[spec.BasicRecover.INDEX] is spec.BasicRecover
    assert spec08.METHODS[spec.BasicRecoverOk.INDEX] is spec.BasicRecoverOk
    assert spec08.METHODS[0x003C0064] is spec.BasicRecoverAsync
    assert spec08.DEFINITIONS[0x003C0064].name == "basic.recover-async"
    assert {312, 313, 406, 505} <= spec08.REPLY_CODES
    assert spec.BasicNack.INDEX not in spec08.METHODS
    assert spec.ConfirmSelect.INDEX not in spec08.METHODS
    assert spec.ExchangeBind.INDEX not in spec08.METHODS


def test_0_8_only_layouts() -> None:
    # channel.open-ok has no fields in 0-8 (RabbitMQ sends a 4-byte payload)
    assert spec08.ChannelOpenOk().encode() == b"\x00\x14\x00\x0b"
    # access.request-ok carries the ticket (RabbitMQ answers 1)
    assert spec08.AccessRequestOk(1).encode() == b"\x00\x1e\x00\x0b\x00\x01"
    request = spec08.AccessRequest.decode(b"\x00\x1e\x00\x0a\x05/data\x1e")
    assert (request.realm, request.exclusive, request.active, request.read) == (
        "/data",
        False,
        True,
        True,
    )
    # basic.consume has no arguments table in 0-8
    consume = spec08.BasicConsume(queue="q", consumer_tag="t", no_ack=True)
    assert spec08.BasicConsume.decode(consume.encode()) == consume
    assert consume.encode().endswith(b"\x01q\x01t\x02")


def test_connection_close_is_renumbered() -> None:
    """0-8's connection.close is (10, 60) and close-ok (10, 61): in 0-9-1 those ids are
    connection.blocked and unblocked."""
    close = spec08.ConnectionClose(320, "CONNECTION_FORCED - bye", 0, 0)
    assert isinstance(close, spec.ConnectionClose)
    payload = close.encode()
    assert payload[:4] == b"\x00\x0a\x00\x3c"
    assert spec08.METHODS[0x000A003C].decode(payload) == close
    assert spec08.ConnectionCloseOk().encode() == b"\x00\x0a\x00\x3d"
    assert isinstance(spec08.ConnectionCloseOk(), spec.ConnectionCloseOk)
