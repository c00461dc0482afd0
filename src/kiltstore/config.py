"""Settings shared by every kilt store service.

Each value comes from a command-line option, else an environment variable, else a
default that suits one machine. Running services on several machines means setting
``AMQP_URL`` (the broker, e.g. RabbitMQ) and the URLs of the HTTP services they call
(``KILTSTORE_CRM_URL``, ``KILTSTORE_PAYMENT_URL``) and the SMTP server.

``AMQP_URL`` may name several brokers, the nodes of a cluster: URLs separated by commas
(``amqp://u:p@node1:5672/,amqp://u:p@node2:5672/``) or one URL with a host list
(``amqp://u:p@node1:5672,node2:5672/``). Each service then connects to one of them,
picked at random, and moves to another when its node goes away. The queue type
(``KILTSTORE_QUEUE_TYPE``) is ``quorum`` by default when several brokers are named,
``classic`` otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from kiltmq import parse_addresses
from kiltstore.topology import DEFAULT_PREFIX, QUEUE_TYPES, RETRY_DELAYS

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


def broker_urls(amqp_url: str) -> list[str]:
    """The brokers named by ``amqp_url``: one URL, URLs separated by commas, or one URL
    with a comma-separated host list (kept whole: the client reads it)."""
    return [url.strip() for url in re.split(r",\s*(?=amqps?://)", amqp_url) if url.strip()]


def broker_count(amqp_url: str) -> int:
    """How many brokers ``amqp_url`` names (host lists counted per host)."""
    return len(parse_addresses(broker_urls(amqp_url)))


def queue_type_for(amqp_url: str, queue_type: str = "") -> str:
    """The queue type to declare: ``queue_type`` if given, else ``quorum`` for several
    brokers (a cluster) and ``classic`` for one."""
    if queue_type:
        if queue_type not in QUEUE_TYPES:
            raise ValueError(
                f"unknown queue type {queue_type!r} (use {' or '.join(QUEUE_TYPES)})"
            )
        return queue_type
    return "quorum" if broker_count(amqp_url) > 1 else "classic"


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
    #: The type of the store's queues, "classic" or "quorum"; "" picks by the number of
    #: brokers in ``amqp_url`` (see :func:`queue_type_for`).
    queue_type: str = ""

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
            queue_type=_env("KILTSTORE_QUEUE_TYPE", base.queue_type),
            retry_delays=tuple(
                float(delay)
                for delay in _env(
                    "KILTSTORE_RETRY_DELAYS", ",".join(f"{d:g}" for d in base.retry_delays)
                ).split(",")
            ),
        )

    @property
    def queues(self) -> str:
        """The queue type the store declares with these settings."""
        return queue_type_for(self.amqp_url, self.queue_type)

    def db_path(self, service: str) -> Path:
        return self.data_dir / f"{service}.sqlite3"
