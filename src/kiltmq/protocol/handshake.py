"""The connection handshake: roles, connection states and the moves between them, and
tune negotiation.

The moves are a table from (state, method) to the next state. The same table serves both
roles, because the spec says which side sends each method (``SENT_BY_CLIENT`` /
``SENT_BY_SERVER`` in ``spec.py``).
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ConnectionState", "Role", "negotiate", "next_state"]


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"


class ConnectionState(Enum):
    """Where the handshake stands; the name says what is expected next."""

    HEADER = "header"  # protocol header not yet exchanged
    START = "start"  # connection.start expected (from the server)
    START_OK = "start-ok"  # connection.start-ok expected (from the client)
    SECURE_OR_TUNE = "secure-or-tune"  # server sends connection.secure or connection.tune
    SECURE_OK = "secure-ok"  # connection.secure-ok expected (from the client)
    TUNE_OK = "tune-ok"  # connection.tune-ok expected (from the client)
    OPEN = "open"  # connection.open expected (from the client)
    OPEN_OK = "open-ok"  # connection.open-ok expected (from the server)
    OPENED = "opened"  # channels may be used
    CLOSING = "closing"  # connection.close sent or received, close-ok expected
    CLOSED = "closed"


S = ConnectionState
# (state, method name) -> next state, whichever side sends.
_HANDSHAKE: dict[tuple[ConnectionState, str], ConnectionState] = {
    (S.START, "connection.start"): S.START_OK,
    (S.START_OK, "connection.start-ok"): S.SECURE_OR_TUNE,
    (S.SECURE_OR_TUNE, "connection.secure"): S.SECURE_OK,
    (S.SECURE_OK, "connection.secure-ok"): S.SECURE_OR_TUNE,
    (S.SECURE_OR_TUNE, "connection.tune"): S.TUNE_OK,
    (S.TUNE_OK, "connection.tune-ok"): S.OPEN,
    (S.OPEN, "connection.open"): S.OPEN_OK,
    (S.OPEN_OK, "connection.open-ok"): S.OPENED,
}
# Connection methods allowed once open, in either direction, that keep the state.
_OPENED_METHODS = frozenset(
    {
        "connection.blocked",
        "connection.unblocked",
        "connection.update-secret",
        "connection.update-secret-ok",
    }
)


def next_state(state: ConnectionState, name: str) -> ConnectionState | None:
    """The state after connection method ``name`` passes in ``state``, in either direction;
    None if it may not pass then. connection.close and close-ok pass in any state."""
    if name == "connection.close":
        return S.CLOSING
    if name == "connection.close-ok":
        return S.CLOSED
    if state is S.OPENED and name in _OPENED_METHODS:
        return state
    return _HANDSHAKE.get((state, name))


def negotiate(ours: int, theirs: int) -> int:
    """Tune negotiation for channel_max, frame_max and heartbeat: 0 means "no limit", so
    the non-zero value wins; otherwise the smaller one."""
    if not ours or not theirs:
        return ours or theirs
    return min(ours, theirs)
