"""The demo's mailbox: an SMTP server (aiosmtpd) and a page showing what it received.

It stands in for the customers' mail providers. Mail is kept in its database, once
per ``Message-ID`` (a resent duplicate is dropped, as mail systems do), and the page
updates live as mail arrives. Like a real provider it can refuse a recipient
(:attr:`Mailbox.refusals`: a 5xx or 4xx reply to ``RCPT TO``).
``GET /mails.json?to=ADDRESS`` lists mail for tests.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from kiltstore.services.base import Service
from kiltstore.web import EventHub, bind_socket, render, render_string

SCHEMA = """
CREATE TABLE IF NOT EXISTS mails (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT UNIQUE,
    mail_from   TEXT NOT NULL,
    rcpt        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


class _Handler:
    """aiosmtpd's handler: hands each message to the mailbox."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.mailbox.refusals.get(address.lower())
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mailbox.receive(envelope)
        return "250 Message accepted for delivery"


class Mailbox(Service):
    name: ClassVar[str] = "mailbox"
    schema: ClassVar[str] = SCHEMA
    uses_bus: ClassVar[bool] = False
    site_label: ClassVar[str] = "mailbox"

    #: Recipients the SMTP server refuses (lower-case address -> SMTP reply, such as
    #: ``"550 5.1.1 no such mailbox"``), as a real mail provider refuses unknown or full
    #: mailboxes. Empty: every address is taken.
    refusals: dict[str, str]

    async def setup(self) -> None:
        self.refusals = {}
        self.hub = EventHub()
        assert self.app is not None
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/mails", self.mails_fragment)
        self.app.router.add_get("/mails.json", self.mails_json)
        self.app.router.add_get("/events", self.hub.stream)
        loop = asyncio.get_running_loop()
        sock = bind_socket(self.settings.smtp_host, self.settings.smtp_port)
        self.smtp_port = sock.getsockname()[1]
        self._server = await loop.create_server(
            lambda: SMTP(_Handler(self), hostname="mailbox.kiltstore", loop=loop), sock=sock
        )

    async def started(self) -> None:
        self.urls["SMTP"] = f"smtp://{self.settings.smtp_host}:{self.smtp_port}"

    def receive(self, envelope: Envelope) -> None:
        """Keep one received message."""
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content().replace("\r\n", "\n") if body is not None else ""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT OR IGNORE INTO mails (message_id, mail_from, rcpt, subject, body,"
                " order_id, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    str(message.get("Message-ID", "")) or None,
                    str(envelope.mail_from or ""),
                    ", ".join(envelope.rcpt_tos),
                    str(message.get("Subject", "")),
                    text,
                    str(message.get("X-Kiltstore-Order", "")),
                    time.time(),
                ),
            )
        self.hub.publish("mail", {"to": envelope.rcpt_tos})

    def mails(self, to: str = "") -> list[dict[str, Any]]:
        if to:
            rows = self.db.query(
                "SELECT * FROM mails WHERE rcpt LIKE ? ORDER BY id DESC", (f"%{to}%",)
            )
        else:
            rows = self.db.query("SELECT * FROM mails ORDER BY id DESC LIMIT 200")
        return [
            {**dict(row), "received": datetime.fromtimestamp(row["received_at"], UTC).replace(
                microsecond=0).isoformat()}
            for row in rows
        ]

    async def page(self, request: web.Request) -> web.Response:
        return render("mailbox.html", mails=self.mails())

    async def mails_fragment(self, request: web.Request) -> web.Response:
        return web.Response(
            text=render_string("mailbox_mails.html", mails=self.mails()), content_type="text/html"
        )

    async def mails_json(self, request: web.Request) -> web.Response:
        return web.json_response({"mails": self.mails(request.query.get("to", ""))})

    async def stopped(self) -> None:
        server: asyncio.Server | None = getattr(self, "_server", None)
        if server is not None:
            server.close()
            await server.wait_closed()
