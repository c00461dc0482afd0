"""Cross-check against pamqp, an independent AMQP 0-9-1 codec: for every method, our frames
decode correctly with pamqp and pamqp's frames decode correctly with ours; the same for
content-header properties and field tables.

pamqp's quirks, compared around rather than copied:

* reserved arguments have historic names (``ticket``, ``capabilities``, ``insist``,
  ``known_hosts``, ``out_of_band``, ``channel_id``, ``cluster_id``) and pamqp insists on
  its own values for them when encoding (``out_of_band='0'``, ``channel_id='0'``);
* ``nowait`` for our ``no_wait``, ``exchange_type`` for ``type``, ``message_type`` for the
  ``type`` property;
* long strings are ``str`` on its side (bytes when not UTF-8), ``bytes`` on ours;
* longlong (delivery tags) is read and written signed;
* it omits empty-string properties when encoding, and its properties' timestamp is a
  ``datetime`` (read as milliseconds when above 32 bits);
* in tables it picks the smallest integer type code, writes floats as 32-bit ``f``,
  encodes only ``bytearray`` as ``x`` and decodes ``x`` to ``bytearray``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import base as pamqp_base
from pamqp import body as pamqp_body
from pamqp import commands as pamqp_commands
from pamqp import decode as pamqp_decode
from pamqp import encode as pamqp_encode
from pamqp import frame as pamqp_frame
from pamqp import header as pamqp_header

from kiltmq.protocol import spec
from kiltmq.protocol.codec import decode_table, encode_table
from kiltmq.protocol.connection import Connection, ContentReceived, Role
from kiltmq.protocol.frames import FrameReader, content_frames, content_header_payload, method_frame

from .strategies import (
    SETTINGS,
    SMALL_SETTINGS,
    UINT32_TIMESTAMP,
    argument_types,
    cross_field_tables,
    methods,
    pamqp_field_tables,
    properties,
    same_value,
    strategy_for,
    text,
    timestamps,
)

pytestmark = pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning")

ALL_METHODS = sorted(spec.METHODS.values(), key=lambda cls: cls.INDEX)
PAMQP_RENAMES = {"exchange_type": "type", "message_type": "type"}
# pamqp validates these as AMQP names when it encodes
NAME_FIELDS = {"exchange", "queue", "destination", "source"}
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@#,/+ "


def pamqp_class(cls: type[spec.Method]) -> type[pamqp_base.Frame]:
    theirs: type[pamqp_base.Frame] = pamqp_commands.INDEX_MAPPING[cls.INDEX]
    assert theirs.frame_id == cls.METHOD_ID
    return theirs


def field_pairs(cls: type[spec.Method]) -> list[tuple[str, str]]:
    """(our name, pamqp name) for each argument, in wire order (pamqp's slot order).

    Names match after dropping underscores (``no_wait``/``nowait``) or by the rename table;
    pamqp's names for reserved arguments pair with our ``reserved_N`` in order.
    """
    theirs = pamqp_class(cls)
    ours: list[str] = list(cls.__slots__)
    reserved = [n for n in ours if n.startswith("reserved_")]
    by_key = {n.replace("_", ""): n for n in ours if n not in reserved}
    pairs = []
    for name in theirs.__slots__:
        mine = PAMQP_RENAMES.get(name) or by_key.get(name.replace("_", ""))
        if mine is None:
            mine = reserved.pop(0)
        pairs.append((mine, name))
    assert sorted(m for m, _ in pairs) == sorted(ours), (cls.NAME, pairs)
    return pairs


def test_field_pairing_covers_every_method() -> None:
    assert set(pamqp_commands.INDEX_MAPPING) == set(spec.METHODS)
    for cls in ALL_METHODS:
        pairs = field_pairs(cls)
        assert len(pairs) == len(cls.__slots__)
    assert field_pairs(spec.ExchangeDeclare)[:3] == [
        ("reserved_1", "ticket"),
        ("exchange", "exchange"),
        ("type", "exchange_type"),
    ]


def same_argument(ours: Any, theirs: Any, pamqp_type: str) -> bool:
    if pamqp_type == "longstr" and isinstance(theirs, str):
        theirs = theirs.encode()
    if pamqp_type == "longlong" and isinstance(theirs, int):
        theirs %= 2**64  # pamqp's longlong is signed
    if pamqp_type == "table" and ours is None:
        ours = {}
    return same_value(ours, theirs)


# -- methods -------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_METHODS, ids=lambda cls: cls.NAME)
@SMALL_SETTINGS
@given(data=st.data())
def test_our_methods_decode_with_pamqp(cls: type[spec.Method], data: st.DataObject) -> None:
    method = data.draw(methods(cls, st.none() | cross_field_tables()))
    channel = data.draw(st.integers(0, 65535))
    wire = method_frame(channel, method)
    consumed, ch, theirs = pamqp_frame.unmarshal(wire)
    assert (consumed, ch) == (len(wire), channel)
    assert isinstance(theirs, pamqp_class(cls))
    for mine, their_name in field_pairs(cls):
        kind = theirs.amqp_type(their_name)
        assert same_argument(getattr(method, mine), getattr(theirs, their_name), kind), mine


def pamqp_arguments(cls: type[spec.Method]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for pamqp's class: every public argument drawn within what pamqp
    validates; reserved arguments left to pamqp's defaults."""
    theirs = pamqp_class(cls)
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for mine, their_name in field_pairs(cls):
        if mine.startswith("reserved_"):
            continue
        kind = theirs.amqp_type(their_name)
        if their_name in NAME_FIELDS:
            kwargs[their_name] = st.text(NAME_ALPHABET, max_size=127)
        elif kind == "longstr":
            kwargs[their_name] = text(max_bytes=2000, max_size=200)
        elif kind == "longlong":
            kwargs[their_name] = st.integers(0, 2**63 - 1)
        elif kind == "table":
            kwargs[their_name] = pamqp_field_tables()
        else:
            kwargs[their_name] = strategy_for(cls, mine, st.nothing())
    return st.fixed_dictionaries(kwargs)


@pytest.mark.parametrize("cls", ALL_METHODS, ids=lambda cls: cls.NAME)
@SMALL_SETTINGS
@given(data=st.data())
def test_pamqp_methods_decode_with_ours(cls: type[spec.Method], data: st.DataObject) -> None:
    kwargs = data.draw(pamqp_arguments(cls))
    theirs = pamqp_class(cls)(**kwargs)
    channel = data.draw(st.integers(0, 65535))
    wire = pamqp_frame.marshal(theirs, channel)
    frames = FrameReader(frame_max=0).feed(wire)
    assert len(frames) == 1
    ftype, ch, payload = frames[0]
    assert (ftype, ch) == (1, channel)
    assert int.from_bytes(payload[:4]) == cls.INDEX
    ours = cls.decode(payload)
    for mine, their_name in field_pairs(cls):
        kind = theirs.amqp_type(their_name)
        assert same_argument(getattr(ours, mine), getattr(theirs, their_name), kind), mine
    # and our encoding of what we decoded is what pamqp sent, table type codes aside
    if not any(theirs.amqp_type(n) == "table" for n in theirs.__slots__):
        assert ours.encode() == payload


# -- properties and content ----------------------------------------------------------------

PROPERTY_PAIRS = [(PAMQP_RENAMES.get(n, n), n) for n in pamqp_commands.Basic.Properties.__slots__]


def test_property_names_pair_up() -> None:
    assert [mine for mine, _ in PROPERTY_PAIRS] == list(spec.BasicProperties.FIELDS)


def our_cross_properties() -> st.SearchStrategy[spec.BasicProperties]:
    """Our properties, with timestamps pamqp reads as seconds."""
    return properties(cross_field_tables()).map(_clamp_timestamp)


def _clamp_timestamp(props: spec.BasicProperties) -> spec.BasicProperties:
    if props.timestamp is not None:
        props.timestamp %= UINT32_TIMESTAMP + 1
    return props


def same_property(name: str, ours: Any, theirs: Any) -> bool:
    if name == "timestamp" and isinstance(theirs, datetime):
        theirs = int(theirs.timestamp())
    if name == "cluster_id" and ours is None:
        ours = ""  # pamqp's default when absent
    return same_value(ours, theirs)


@SETTINGS
@given(our_cross_properties(), st.binary(max_size=300), st.integers(1, 65535))
def test_our_content_decodes_with_pamqp(
    props: spec.BasicProperties, body: bytes, channel: int
) -> None:
    method = spec.BasicPublish("ex", "rk")
    wire = content_frames(
        channel, method.encode(), content_header_payload(60, len(body), props), body, 4096
    )
    decoded = []
    offset = 0
    while offset < len(wire):
        consumed, ch, frame = pamqp_frame.unmarshal(wire[offset:])
        assert ch == channel
        decoded.append(frame)
        offset += consumed
    publish, header, *bodies = decoded
    assert isinstance(publish, pamqp_commands.Basic.Publish)
    assert isinstance(header, pamqp_header.ContentHeader)
    assert header.body_size == len(body)
    assert all(isinstance(b, pamqp_body.ContentBody) for b in bodies)
    assert b"".join(b.value for b in bodies if isinstance(b, pamqp_body.ContentBody)) == body
    for mine, their_name in PROPERTY_PAIRS:
        assert same_property(mine, getattr(props, mine), getattr(header.properties, their_name)), (
            mine
        )


def pamqp_properties() -> st.SearchStrategy[pamqp_commands.Basic.Properties]:
    """pamqp properties with a random subset present, within what pamqp encodes: no empty
    strings (it drops them), delivery mode 1 or 2, no cluster id, datetime timestamps."""
    nonempty = text().filter(bool)
    return st.builds(
        pamqp_commands.Basic.Properties,
        content_type=st.none() | nonempty,
        content_encoding=st.none() | nonempty,
        headers=st.none() | pamqp_field_tables(),
        delivery_mode=st.none() | st.sampled_from([1, 2]),
        priority=st.none() | st.integers(0, 255),
        correlation_id=st.none() | nonempty,
        reply_to=st.none() | nonempty,
        expiration=st.none() | nonempty,
        message_id=st.none() | nonempty,
        timestamp=st.none() | timestamps(UINT32_TIMESTAMP),
        message_type=st.none() | nonempty,
        user_id=st.none() | nonempty,
        app_id=st.none() | nonempty,
    )


@SETTINGS
@given(pamqp_properties(), st.binary(max_size=300))
def test_pamqp_content_decodes_with_ours(
    theirs: pamqp_commands.Basic.Properties, body: bytes
) -> None:
    # a client (pamqp) publishes to a server (us) on an open channel
    server = _open_server()
    wire = b"".join(
        [
            pamqp_frame.marshal(pamqp_commands.Basic.Publish(exchange="ex", routing_key="rk"), 1),
            pamqp_frame.marshal(pamqp_header.ContentHeader(0, len(body), theirs), 1),
            *(
                [pamqp_frame.marshal(pamqp_body.ContentBody(body), 1)]
                if body
                else []  # no body frame for an empty body
            ),
        ]
    )
    (event,) = server.receive_data(wire)
    assert isinstance(event, ContentReceived)
    assert event.body == body
    assert event.method == spec.BasicPublish("ex", "rk")
    ours = event.properties()
    for mine, their_name in PROPERTY_PAIRS:
        assert same_property(mine, getattr(ours, mine), getattr(theirs, their_name)), mine


def _open_server() -> Connection:
    client = Connection(Role.CLIENT)
    server = Connection(Role.SERVER)
    steps: list[tuple[Connection, int, spec.Method]] = [
        (server, 0, spec.ConnectionStart(0, 9, {}, b"PLAIN", b"en_US")),
        (client, 0, spec.ConnectionStartOk({}, "PLAIN", b"\0u\0p", "en_US")),
        (server, 0, spec.ConnectionTune(0, 131072, 0)),
        (client, 0, spec.ConnectionTuneOk(0, 131072, 0)),
        (client, 0, spec.ConnectionOpen("/")),
        (server, 0, spec.ConnectionOpenOk()),
        (client, 1, spec.ChannelOpen()),
        (server, 1, spec.ChannelOpenOk()),
    ]
    client.send_protocol_header()
    server.receive_data(client.data_to_send())
    for sender, channel, method in steps:
        sender.send_method(channel, method)
        receiver = server if sender is client else client
        receiver.receive_data(sender.data_to_send())
    return server


# -- field tables --------------------------------------------------------------------------


@SETTINGS
@given(cross_field_tables())
def test_our_tables_decode_with_pamqp(table: dict[str, Any]) -> None:
    raw = encode_table(table)
    consumed, theirs = pamqp_decode.field_table(raw)
    assert consumed == len(raw)
    assert same_value(theirs, table)


@SETTINGS
@given(pamqp_field_tables())
def test_pamqp_tables_decode_with_ours(table: dict[str, Any]) -> None:
    raw = pamqp_encode.field_table(table)
    ours, end = decode_table(raw, 0)
    assert end == len(raw)
    assert same_value(ours, table)


def test_pamqp_integer_type_codes_decode_as_int() -> None:
    # pamqp picks the smallest code: b, s, u, I, i, l
    table: dict[str, Any] = {
        "b": -1,
        "s": -300,
        "u": 40000,
        "I": -70000,
        "i": 3_000_000_000,
        "l": 2**40,
    }
    raw = pamqp_encode.field_table(table)
    for code in table:
        assert b"\x01" + 2 * code.encode() in raw  # key, then the same letter as type code
    decoded, _ = decode_table(raw, 0)
    assert decoded == table
    assert all(type(v) is int for v in decoded.values())


def test_timestamps_agree() -> None:
    moment = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert pamqp_encode.timestamp(moment) == encode_table({"t": moment})[-8:]
    props = pamqp_commands.Basic.Properties(timestamp=moment)
    raw = pamqp_header.ContentHeader(0, 0, props).marshal()
    assert spec.BasicProperties.decode(raw, 12).timestamp == 1700000000
    assert argument_types(spec.BasicProperties)["timestamp"] == int | None
