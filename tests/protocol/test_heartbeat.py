"""Heartbeats: the bookkeeping with explicit times, and heartbeat frames on the wire."""

from __future__ import annotations

from kiltmq.protocol.connection import Heartbeat, HeartbeatReceived, Role
from kiltmq.protocol.frames import HEARTBEAT_FRAME

from .pair import Pair, opened


def test_heartbeat_bookkeeping_with_explicit_times() -> None:
    hb = Heartbeat()
    assert not hb.send_due(1e9) and not hb.peer_dead(1e9)
    assert hb.next_deadline(0) is None
    hb.start(60, now=1000.0)
    assert hb.interval == 60
    assert not hb.send_due(1029.9)
    assert hb.send_due(1030.0)  # half the interval without sending
    assert hb.next_deadline(1000.0) == 1030.0
    hb.sent(1030.0)
    assert not hb.send_due(1059.0)
    # the peer is dead after two intervals of silence (strictly more than 120 s)
    assert not hb.peer_dead(1120.0)
    assert hb.peer_dead(1120.001)
    assert hb.next_deadline(1030.0) == 1060.0
    hb.received(1100.0)
    assert not hb.peer_dead(1200.0)
    hb.sent(1200.0)
    assert hb.next_deadline(1200.0) == 1220.0  # last_received + 120 comes first
    custom = Heartbeat(10, miss_limit=3)
    custom.start(10, 0.0)
    assert not custom.peer_dead(30.0) and custom.peer_dead(30.5)


def test_heartbeat_frames_and_negotiated_interval() -> None:
    pair = opened(tune=(0, 131072, 60), tune_ok=(0, 131072, 20))
    assert pair.client.conn.heartbeat.interval == pair.server.conn.heartbeat.interval == 20
    pair.client.act("send_heartbeat")
    assert pair.client.conn.data_to_send() == HEARTBEAT_FRAME
    pair.server.act("send_heartbeat")
    assert pair.flush(Role.SERVER) == [HeartbeatReceived()]


def test_heartbeat_during_handshake_is_fine() -> None:
    pair = Pair()
    pair.client.act("send_protocol_header")
    pair.flush(Role.CLIENT)
    assert pair.raw(Role.CLIENT, HEARTBEAT_FRAME) == [HeartbeatReceived()]
