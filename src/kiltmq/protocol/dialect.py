"""Protocol dialects: AMQP 0-9-1 and the AMQP 0-8 that RabbitMQ still serves.

A server picks the dialect from the client's protocol header, as RabbitMQ does:
``AMQP 0 0 9 1`` and ``AMQP 1 1 0 9`` (0-9) get the 0-9-1 tables, ``AMQP 1 1 8 0`` and
``AMQP 1 1 9 1`` (the 0-8 header some libraries send, py-amqplib among them) the 0-8
tables. The dialect is chosen once per connection; the receive path then looks methods up
in its tables as before.
"""

from __future__ import annotations

from kiltmq.protocol import spec, spec08
from kiltmq.protocol.spec import Method

__all__ = ["AMQP_0_8", "AMQP_0_9_1", "DIALECTS_BY_HEADER", "Dialect"]

#: Classes of 0-8 that RabbitMQ handles; a method of another class (file, stream, dtx,
#: tunnel, test) is answered with 503 "unimplemented method", as RabbitMQ 3.10 does.
IMPLEMENTED_CLASSES_0_8 = frozenset({10, 20, 30, 40, 50, 60, 90})


class Dialect:
    """One protocol version's tables: what each side may send, and the few methods whose
    class differs between the dialects."""

    __slots__ = (
        "channel_open_ok",
        "connection_close",
        "connection_close_ok",
        "from_client",
        "from_server",
        "header",
        "methods",
        "name",
        "version",
    )

    def __init__(
        self,
        name: str,
        header: bytes,
        version: tuple[int, int],
        methods: dict[int, type[Method]],
        from_client: dict[int, type[Method]],
        from_server: dict[int, type[Method]],
        channel_open_ok: Method,
        connection_close: type[spec.ConnectionClose],
        connection_close_ok: type[spec.ConnectionCloseOk],
    ) -> None:
        self.name = name
        #: The protocol header a client of this dialect sends.
        self.header = header
        #: (major, minor) that connection.start announces.
        self.version = version
        #: Every method of the dialect by ``INDEX``.
        self.methods = methods
        #: The methods a server accepts from a client, and a client from a server.
        self.from_client = from_client
        self.from_server = from_server
        #: The reply to channel.open (no fields in 0-8, a long string in 0-9-1).
        self.channel_open_ok = channel_open_ok
        #: connection.close and close-ok: (10, 50) and (10, 51) in 0-9-1, (10, 60) and
        #: (10, 61) in 0-8.
        self.connection_close = connection_close
        self.connection_close_ok = connection_close_ok

    def __repr__(self) -> str:
        return f"Dialect({self.name})"


AMQP_0_9_1 = Dialect(
    "0-9-1",
    spec.PROTOCOL_HEADER,
    (0, 9),
    spec.METHODS,
    {i: m for i, m in spec.METHODS.items() if m.SENT_BY_CLIENT},
    {i: m for i, m in spec.METHODS.items() if m.SENT_BY_SERVER},
    spec.ChannelOpenOk(),
    spec.ConnectionClose,
    spec.ConnectionCloseOk,
)

AMQP_0_8 = Dialect(
    "0-8",
    spec08.PROTOCOL_HEADER,
    (8, 0),
    spec08.METHODS,
    {
        i: spec08.METHODS[i]
        for i, d in spec08.DEFINITIONS.items()
        if d.sent_by_client and i >> 16 in IMPLEMENTED_CLASSES_0_8
    },
    {i: spec08.METHODS[i] for i, d in spec08.DEFINITIONS.items() if d.sent_by_server},
    spec08.ChannelOpenOk(),
    spec08.ConnectionClose,
    spec08.ConnectionCloseOk,
)

DIALECTS_BY_HEADER: dict[bytes, Dialect] = {
    spec.PROTOCOL_HEADER: AMQP_0_9_1,
    b"AMQP\x01\x01\x00\x09": AMQP_0_9_1,
    spec08.PROTOCOL_HEADER: AMQP_0_8,
    b"AMQP\x01\x01\x09\x01": AMQP_0_8,
}
"""The protocol headers a server accepts and the dialect each one selects."""
