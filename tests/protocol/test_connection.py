"""The connection state machine once open: connection.close from either side, and
connection.blocked / unblocked."""

from __future__ import annotations

import pytest

from kiltmq.protocol import spec
from kiltmq.protocol.connection import ConnectionState, HeartbeatReceived, MethodReceived, Role
from kiltmq.protocol.frames import HEARTBEAT_FRAME

from .pair import Pair, opened, state


@pytest.mark.parametrize("closer", [Role.CLIENT, Role.SERVER])
def test_connection_close_either_direction(closer: Role) -> None:
    pair = opened(channels=(1,))
    other = Role.SERVER if closer is Role.CLIENT else Role.CLIENT
    closing, answering = pair.peer(closer).conn, pair.peer(other).conn
    close = spec.ConnectionClose(320, "CONNECTION_FORCED - shutdown", 0, 0)
    pair.peer(closer).act("send_method", 0, close)
    assert state(closing) is ConnectionState.CLOSING
    # the peer's in-flight traffic is discarded once we sent close
    if other is Role.CLIENT:
        pair.client.act("send_method", 1, spec.BasicQos(0, 5, False))
    else:
        pair.server.act("send_content", 1, spec.BasicDeliver("c", 1, False, "", "q"), None, b"x")
    pair.peer(other).act("send_heartbeat")
    events = pair.flush(other)
    assert events == [HeartbeatReceived()]
    assert pair.flush(closer) == [MethodReceived(0, close)]
    assert state(answering) is ConnectionState.CLOSING
    pair.peer(other).act("send_method", 0, spec.ConnectionCloseOk())
    assert state(answering) is ConnectionState.CLOSED
    assert pair.flush(other) == [MethodReceived(0, spec.ConnectionCloseOk())]
    assert state(closing) is ConnectionState.CLOSED
    assert closing.receive_data(HEARTBEAT_FRAME) == []


def test_connection_close_during_handshake() -> None:
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    close = spec.ConnectionClose(530, "NOT_ALLOWED", 0, 0)
    assert pair.send(Role.SERVER, 0, close) == [MethodReceived(0, close)]
    assert pair.send(Role.CLIENT, 0, spec.ConnectionCloseOk()) == [
        MethodReceived(0, spec.ConnectionCloseOk())
    ]
    assert state(pair.server.conn) is ConnectionState.CLOSED


def test_blocked_and_unblocked_once_open() -> None:
    pair = opened()
    blocked = spec.ConnectionBlocked("low on memory")
    assert pair.send(Role.SERVER, 0, blocked) == [MethodReceived(0, blocked)]
    assert pair.send(Role.SERVER, 0, spec.ConnectionUnblocked()) == [
        MethodReceived(0, spec.ConnectionUnblocked())
    ]
    assert state(pair.client.conn) is ConnectionState.OPENED


def test_update_secret_from_the_client_once_open() -> None:
    pair = opened()
    update = spec.ConnectionUpdateSecret(b"new password", "rotation")
    assert pair.send(Role.CLIENT, 0, update) == [MethodReceived(0, update)]
    ok = spec.ConnectionUpdateSecretOk()
    assert pair.send(Role.SERVER, 0, ok) == [MethodReceived(0, ok)]
    assert state(pair.server.conn) is ConnectionState.OPENED
    assert state(pair.client.conn) is ConnectionState.OPENED


def test_update_secret_goes_client_to_server_only() -> None:
    assert spec.ConnectionUpdateSecret.SENT_BY_CLIENT
    assert not spec.ConnectionUpdateSecret.SENT_BY_SERVER
    assert spec.ConnectionUpdateSecretOk.SENT_BY_SERVER
    assert not spec.ConnectionUpdateSecretOk.SENT_BY_CLIENT
