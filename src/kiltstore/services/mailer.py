"""The mailer: a Channel Adapter from order events to the customer's e-mail (SMTP).

It subscribes to the changes a customer cares about (invalid, declined, approved,
finished, shipped, cancelled, refunded) and sends one e-mail for each. Each e-mail has a
deterministic ``Message-ID`` (order id and state), and the event's id is stored once the mail is
accepted by the SMTP server. If the mailer dies between the two, the event is
redelivered and the mail sent again with the same Message-ID, which mail systems
(and the demo's mailbox) use to drop the duplicate.

An SMTP server's permanent refusal (a 5xx reply, to the mail or to its recipient) is
not retried: the event goes to the Dead Letter Channel at once with the server's answer
as the reason. A passing one (a 4xx reply, to the mail or to its recipient; the server
unreachable) is retried with back-off, and dead-lettered when the retries run out.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar

from kiltstore.bus import Apply, Incoming, PoisonMessage
from kiltstore.domain import SHIPPING_COUNTRIES, OrderEvent, State, format_pence
from kiltstore.limits import MAX_LENGTH
from kiltstore.services.base import Service
from kiltstore.services.validator import parse_event
from kiltstore.storage import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    rcpt       TEXT NOT NULL,
    subject    TEXT NOT NULL
);
"""
SMTP_TIMEOUT = 10.0


def _kilts(event: OrderEvent) -> str:
    return "\n".join(
        f"  - {line.quantity} x {line.tartan} kilt, size {line.size} "
        f"(waist {line.waist_cm:g} cm, hip {line.hip_cm:g} cm, length {line.length_cm:g} cm)"
        for line in event.order.lines
    )


def compose(event: OrderEvent, *, sender: str, store_url: str) -> EmailMessage | None:
    """The e-mail telling the customer about ``event``, or None if it needs none."""
    order = event.order
    full_name = order.customer.name[: MAX_LENGTH["name"]]
    name = full_name.split()[0] if full_name.strip() else "customer"
    reasons = "\n".join(f"  - {reason}" for reason in event.reasons)
    link = ""
    if event.detail.get("status_path"):
        link = f"\nFollow your order at {store_url}{event.detail['status_path']}\n"
    if event.detail.get("orders_path"):
        link += f"All your orders: {store_url}{event.detail['orders_path']}\n"
    subjects_bodies: dict[State, tuple[str, str]] = {
        State.INVALID: (
            f"We can't make order {order.order_id} as it stands",
            f"We couldn't accept your order, for these reasons:\n{reasons}\n\n"
            "Nothing has been charged. Please place the order again, or reply to this\n"
            "e-mail and we'll sort it out together.\n",
        ),
        State.DECLINED: (
            f"Payment for order {order.order_id} was declined",
            f"Your card ending {order.payment.last4} was declined:\n{reasons}\n\n"
            "Nothing has been charged. Please try another card.\n",
        ),
        State.APPROVED: (
            f"Order {order.order_id} confirmed: your kilt is on the loom",
            f"Thank you! We've charged {format_pence(order.total_pence)} to your card ending "
            f"{order.payment.last4}, and MacGrudder has started on:\n{_kilts(event)}\n",
        ),
        State.CANCELLED: (
            f"Order {order.order_id} cancelled",
            f"As you asked, we've cancelled your order:\n{_kilts(event)}\n\n"
            f"We're refunding {format_pence(order.total_pence)} to your card ending "
            f"{order.payment.last4}; you'll hear from us when it's done.\n",
        ),
        State.REFUNDED: (
            f"Refund for order {order.order_id}",
            f"We've refunded {format_pence(order.total_pence)} to your card ending "
            f"{order.payment.last4} (refund {event.detail.get('refund_id', '?')}).\n",
        ),
        State.FINISHED: (
            f"Your kilt is finished (order {order.order_id})",
            f"MacGrudder has finished your order:\n{_kilts(event)}\n\n"
            "It's off to our shipping partner; you'll get the tracking number shortly.\n",
        ),
        State.SHIPPED: (
            f"Order {order.order_id} shipped: tracking {event.detail.get('tracking', '?')}",
            f"Your order is on its way with {event.detail.get('carrier', 'our carrier')},\n"
            f"tracking number {event.detail.get('tracking', '?')}, to:\n"
            f"  {order.address.street}, {order.address.city} {order.address.postcode}, "
            f"{SHIPPING_COUNTRIES.get(order.address.country, order.address.country)}\n",
        ),
    }
    if event.state not in subjects_bodies:
        return None
    subject, body = subjects_bodies[event.state]
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = f"{full_name} <{order.customer.email}>"
    mail["Subject"] = subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = f"<{order.order_id}.{event.state}@kiltstore>"
    mail["X-Kiltstore-Order"] = order.order_id
    mail["X-Kiltstore-State"] = str(event.state)
    mail.set_content(f"Dear {name},\n\n{body}{link}\nMacGrudder's Kilts, Inverness\n")
    return mail


class MailDeferred(Exception):
    """The SMTP server answered 4xx about a recipient (a full mailbox, greylisting...):
    worth trying again later."""


def _text(answer: bytes | str) -> str:
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def send_mail(host: str, port: int, mail: EmailMessage) -> None:
    with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
        smtp.send_message(mail)


class Mailer(Service):
    name: ClassVar[str] = "mailer"
    schema: ClassVar[str] = SCHEMA

    async def setup(self) -> None:
        self.the_bus.consume("mailer", self.db, self.handle, prefetch=self.settings.prefetch)

    async def handle(self, incoming: Incoming) -> Apply | None:
        event = parse_event(incoming)
        mail = compose(
            event, sender=self.settings.mail_from, store_url=self.settings.webstore_url
        )
        if mail is None:
            return None
        subject = str(mail["Subject"])
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, send_mail, self.settings.smtp_host, self.settings.smtp_port, mail
            )
        except smtplib.SMTPRecipientsRefused as exc:
            answers = "; ".join(
                f"{rcpt}: {code} {_text(error)}" for rcpt, (code, error) in exc.recipients.items()
            )
            if all(code >= 500 for code, _error in exc.recipients.values()):
                raise PoisonMessage(f"the SMTP server refused the recipient {answers}") from exc
            raise MailDeferred(f"the SMTP server deferred the recipient {answers}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise PoisonMessage(
                    f"the SMTP server refused the mail: {exc.smtp_code} {_text(exc.smtp_error)}"
                ) from exc
            raise

        def apply(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO sent VALUES (?, ?, ?, ?)",
                (incoming.message_id, event.order_id, event.order.customer.email, subject),
            )

        return apply
