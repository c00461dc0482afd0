"""The pieces of connection negotiation and close reply texts, without a socket."""

from __future__ import annotations

import pytest

from kiltmq.broker.handshake import BadCredentials, check_tune, read_credentials
from kiltmq.broker.reply_text import reply_text, short
from kiltmq.protocol import spec
from kiltmq.protocol.codec import FieldTable, encode_table
from kiltmq.protocol.errors import CommandInvalid, NotAllowed, NotFound


def _amqplain(table: FieldTable) -> bytes:
    encoded = encode_table(table)
    return encoded[4:]  # AMQPLAIN carries the table without its length


def test_plain_and_amqplain_credentials() -> None:
    assert read_credentials("PLAIN", b"\x00guest\x00secret") == ("guest", "secret")
    response = _amqplain({"LOGIN": "guest", "PASSWORD": "secret"})
    assert read_credentials("AMQPLAIN", response) == ("guest", "secret")


@pytest.mark.parametrize(
    ("mechanism", "response", "reason"),
    [
        ("PLAIN", b"guest\x00secret", "malformed PLAIN response"),
        ("PLAIN", b"\x00gu\xffest\x00secret", "credentials are not UTF-8"),
        ("AMQPLAIN", b"\x05LOG", "malformed AMQPLAIN response"),
        ("AMQPLAIN", _amqplain({"LOGIN": "guest"}), "AMQPLAIN response without LOGIN/PASSWORD"),
    ],
)
def test_unreadable_credentials(mechanism: str, response: bytes, reason: str) -> None:
    with pytest.raises(BadCredentials, match=reason):
        read_credentials(mechanism, response)


def test_unknown_mechanism_is_a_command_error() -> None:
    with pytest.raises(CommandInvalid, match="unknown authentication mechanism 'EXTERNAL'"):
        read_credentials("EXTERNAL", b"")


def test_tune_limits() -> None:
    check_tune(spec.ConnectionTuneOk(2047, 131072, 60), 131072, 2047)
    for tune, text in [
        (spec.ConnectionTuneOk(0, 0, 60), "frame_max=0 > 131072 max size"),
        (spec.ConnectionTuneOk(0, 1024, 60), "frame_max=1024 < 4096 min size"),
        (spec.ConnectionTuneOk(4000, 4096, 60), "channel_max=4000 > 2047 max size"),
    ]:
        with pytest.raises(NotAllowed, match=text):
            check_tune(tune, 131072, 2047)


def test_reply_text_names_the_error_once_and_fits_a_short_string() -> None:
    assert reply_text(NotFound("no queue 'q'")) == "NOT_FOUND - no queue 'q'"
    assert reply_text(NotFound("NOT_FOUND - no queue 'q'")) == "NOT_FOUND - no queue 'q'"
    assert len(reply_text(NotFound("x" * 300)).encode()) == 255
    assert short("é" * 200) == "é" * 127
