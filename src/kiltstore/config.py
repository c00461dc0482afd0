"""Settings shared by every kilt store service.

Each value comes from a command-line option, else an environment variable, else a
default that suits one machine. Running services on several machines means setting
``AMQP_URL`` (the broker, e.g. RabbitMQ) and the URLs of the HTTP services they call
(``KILTSTORE_CRM_URL``, ``KILTSTORE_PAYMENT_URL``) and the SMTP server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from kiltstore.topology import DEFAULT_PREFIX, RETRY_DELAYS

#: Default ports when each service runs on its own on one machine.
DEFAULT_PORTS: dict[str, int] = {
    "webstore": 8080,
    "workshop": 8081,
    "crm": 8082,
    "phone": 8083,
    "mailbox": 8084,
    "board": 8085,
    "payment-gateway": 8086,
}
DEFAULT_SMTP_PORT = 8025
#: Port of the demo's embedded broker (any free port if taken).
DEFAULT_AMQP_PORT = 5673

#: Service name -> "module:Class". Listed in the order the demo starts them.
SERVICES: dict[str, str] = {
    "payment-gateway": "kiltstore.services.payment_gateway:PaymentGateway",
    "crm": "kiltstore.services.crm:CRM",
    "mailbox": "kiltstore.services.mailbox:Mailbox",
    "board": "kiltstore.services.board:Board",
    "normalizer": "kiltstore.services.normalizer:Normalizer",
    "validator": "kiltstore.services.validator:Validator",
    "billing": "kiltstore.services.billing:Billing",
    "workshop": "kiltstore.services.workshop:Workshop",
    "shipping": "kiltstore.services.shipping:Shipping",
    "mailer": "kiltstore.services.mailer:Mailer",
    "webstore": "kiltstore.services.webstore:WebStore",
    "phone": "kiltstore.services.phone:PhoneOrders",
    "crm-adapter": "kiltstore.services.crm_adapter:CRMAdapter",
}


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@dataclass(frozen=True)
class Settings:
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    prefix: str = DEFAULT_PREFIX
    data_dir: Path = Path("data/kiltstore")
    #: Where this service's own HTTP server listens (web pages, XML-RPC, gateway).
    host: str = "127.0.0.1"
    port: int = 0
    #: Services this one talks to directly (not through messages).
    crm_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['crm']}/RPC2"
    payment_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['payment-gateway']}"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = DEFAULT_SMTP_PORT
    mail_from: str = "MacGrudder's Kilts <orders@macgrudder.example>"
    #: Where the web store can be reached by customers (links in e-mails).
    webstore_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['webstore']}"
    #: How often the CRM channel adapter polls the CRM, seconds.
    poll_interval: float = 1.0
    #: How many unacknowledged messages a consumer holds at once.
    prefetch: int = 10
    #: Back-off before each retry of a message that failed for a passing reason, seconds
    #: (at most four; after the last the message goes to the Dead Letter Channel).
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    #: The broker's management web UI (the order board links the queues to it), or "".
    management_url: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        base = cls()
        return replace(
            base,
            amqp_url=_env("AMQP_URL", base.amqp_url),
            prefix=_env("KILTSTORE_PREFIX", base.prefix),
            data_dir=Path(_env("KILTSTORE_DATA_DIR", str(base.data_dir))),
            host=_env("KILTSTORE_HOST", base.host),
            port=int(_env("KILTSTORE_PORT", str(base.port))),
            crm_url=_env("KILTSTORE_CRM_URL", base.crm_url),
            payment_url=_env("KILTSTORE_PAYMENT_URL", base.payment_url),
            smtp_host=_env("KILTSTORE_SMTP_HOST", base.smtp_host),
            smtp_port=int(_env("KILTSTORE_SMTP_PORT", str(base.smtp_port))),
            webstore_url=_env("KILTSTORE_WEBSTORE_URL", base.webstore_url),
            poll_interval=float(_env("KILTSTORE_POLL_INTERVAL", str(base.poll_interval))),
            management_url=_env("KILTSTORE_MANAGEMENT_URL", base.management_url),
            retry_delays=tuple(
                float(delay)
                for delay in _env(
                    "KILTSTORE_RETRY_DELAYS", ",".join(f"{d:g}" for d in base.retry_delays)
                ).split(",")
            ),
        )

    def db_path(self, service: str) -> Path:
        return self.data_dir / f"{service}.sqlite3"
