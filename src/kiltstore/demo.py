"""The whole store in one process: every service, an SMTP mailbox, and (unless an
``AMQP_URL`` is given) kiltmq's embedded broker.

:class:`Store` is what the demo and the end-to-end tests run::

    async with Store(data_dir=path, amqp_url=None) as store:   # None: embedded broker
        store.urls["web store"], store.service("workshop"), ...

The embedded broker keeps its durable queues and persistent messages in
``<data_dir>/broker``, next to the services' databases, so orders in flight survive a
restart of the demo (``persistent_broker=False``, ``kiltmq demo --memory-only``: nothing
is kept).

Services that other services call directly (payment gateway, CRM, mailbox) start
first, so their real addresses can be handed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import kiltmq
from kiltstore.config import DEFAULT_PORTS, DEFAULT_SMTP_PORT, SERVICES, Settings, broker_urls
from kiltstore.services.base import Service, service_class
from kiltstore.topology import DEFAULT_PREFIX
from kiltstore.web import link_sites

log = logging.getLogger("kiltstore.demo")

#: Customers already in the sales rep's CRM when the demo starts on an empty one.
SEED_CUSTOMERS: tuple[dict[str, str], ...] = (
    {
        "first_name": "Jamie",
        "last_name": "Fraser",
        "email": "jamie@lallybroch.example",
        "telephone": "+44 1463 555 0101",
        "address": "Lallybroch House\nBroch Tuarach\nIV63 6XX\nScotland",
    },
    {
        "first_name": "Flora",
        "last_name": "MacDonald",
        "email": "flora@skye.example",
        "telephone": "+44 1470 555 0199",
        "address": "Kingsburgh\nIsle of Skye\nIV51 9UT\nUnited Kingdom",
    },
)


def free_port(host: str, wanted: int) -> int:
    """``wanted`` if it can be bound on ``host``, else 0 (any free port)."""
    if wanted == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, wanted))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return 0
            raise
    return wanted


#: Port of RabbitMQ's management plugin (its web UI and HTTP API).
RABBITMQ_MANAGEMENT_PORT = 15672


async def rabbitmq_management_url(amqp_url: str) -> str:
    """The web UI of RabbitMQ's management plugin on the host of ``amqp_url``'s first
    broker (``http://host:15672/#``: the UI routes pages after the ``#``), if that broker
    says it is RabbitMQ; "" otherwise or if it can't be reached."""
    try:
        first = kiltmq.parse_addresses(broker_urls(amqp_url))[0]
        async with kiltmq.connect(first, connection_timeout=10, recovery=False) as conn:
            product = conn.server_properties.get("product", b"")
    except (kiltmq.AMQPError, kiltmq.ClientError, OSError, TimeoutError, ValueError) as exc:
        log.warning("can't ask the broker which it is: %r", exc)
        return ""
    host = first.host
    name = product.decode("utf-8", "replace") if isinstance(product, bytes) else str(product)
    if name != "RabbitMQ":
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{RABBITMQ_MANAGEMENT_PORT}/#"


class Store:
    """Every service of the store, started and stopped together."""

    def __init__(
        self,
        *,
        data_dir: Path,
        amqp_url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        host: str = "127.0.0.1",
        fixed_ports: bool = False,
        amqp_port: int = 0,
        exclude: frozenset[str] = frozenset(),
        seed: bool = False,
        poll_interval: float = 0.5,
        persistent_broker: bool = True,
        retry_delays: tuple[float, ...] | None = None,
        queue_type: str = "",
        management_url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: The management web UI of the broker at ``amqp_url`` (the order board links its
        #: queues there); None: RabbitMQ's at port 15672 of its host if the broker is
        #: RabbitMQ (:func:`rabbitmq_management_url`), "": none. The embedded broker
        #: brings its own.
        self.management_url = management_url
        #: "classic" or "quorum"; "" picks quorum when ``amqp_url`` names several brokers.
        self.queue_type = queue_type
        self.retry_delays = retry_delays
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.host = host
        self.fixed_ports = fixed_ports
        self.amqp_port = amqp_port
        self.exclude = exclude
        self.seed = seed
        self.poll_interval = poll_interval
        #: Keep the embedded broker's durable queues and persistent messages on disk
        #: (``<data_dir>/broker``), so a restarted demo carries on where it stopped.
        self.persistent_broker = persistent_broker
        self.broker: Any = None
        self.services: dict[str, Service] = {}
        self.urls: dict[str, str] = {}
        self.settings = Settings()

    @property
    def broker_dir(self) -> Path:
        """Where the embedded broker keeps its state (with ``persistent_broker``)."""
        return self.data_dir / "broker"

    def _port(self, name: str) -> int:
        return free_port(self.host, DEFAULT_PORTS[name]) if self.fixed_ports else 0

    def service(self, name: str) -> Any:
        return self.services[name]

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.amqp_url is None:
            from kiltmq.broker import Broker

            port = free_port(self.host, self.amqp_port) if self.amqp_port else 0
            data_dir = self.broker_dir if self.persistent_broker else None
            # A control socket, as `kiltmq broker` opens, so `kiltmq ctl` can inspect it,
            # and the management API with its web UI (15672, or a free port if taken).
            management_port = free_port(self.host, 15672) if self.fixed_ports else 0
            self.broker = Broker(
                host=self.host, port=port, data_dir=data_dir, ctl_socket=True,
                management_port=management_port,
            )
            await self.broker.start()
            self.amqp_url = str(self.broker.url)
            if self.broker.management_url is not None:
                self.urls["management"] = str(self.broker.management_url)
        else:
            if self.management_url is None:
                self.management_url = await rabbitmq_management_url(self.amqp_url)
            if self.management_url:
                self.urls["management"] = self.management_url
        self.urls["AMQP broker"] = self.amqp_url
        smtp_port = free_port(self.host, DEFAULT_SMTP_PORT) if self.fixed_ports else 0
        settings = Settings(
            amqp_url=self.amqp_url,
            prefix=self.prefix,
            data_dir=self.data_dir,
            host=self.host,
            smtp_host=self.host,
            smtp_port=smtp_port,
            poll_interval=self.poll_interval,
            management_url=self.urls.get("management", ""),
            queue_type=self.queue_type,
        )
        if self.retry_delays is not None:
            settings = replace(settings, retry_delays=self.retry_delays)
        # Providers first: their addresses go into the others' settings.
        for name in ("payment-gateway", "crm", "mailbox"):
            if name in self.exclude:
                continue
            await self._start_service(name, replace(settings, port=self._port(name)))
        if "payment-gateway" in self.services:
            settings = replace(
                settings, payment_url=self.services["payment-gateway"].urls["payment gateway"]
            )
        if "crm" in self.services:
            settings = replace(settings, crm_url=self.services["crm"].urls["CRM XML-RPC"])
            if self.seed:
                crm: Any = self.services["crm"]
                if not crm.list_customers():
                    for customer in SEED_CUSTOMERS:
                        crm.add_customer(customer)
        if "mailbox" in self.services:
            mailbox: Any = self.services["mailbox"]
            settings = replace(settings, smtp_port=mailbox.smtp_port)
        webstore_port = self._port("webstore")
        if webstore_port == 0:
            # Know the web store's address before the mailer starts (links in e-mails).
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                webstore_port = sock.getsockname()[1]
        settings = replace(settings, webstore_url=f"http://{self.host}:{webstore_port}")
        for name in SERVICES:
            if name in self.services or name in self.exclude:
                continue
            port = webstore_port if name == "webstore" else (
                self._port(name) if name in DEFAULT_PORTS else 0
            )
            await self._start_service(name, replace(settings, port=port))
        self.settings = settings
        link_sites({label: self.urls[label] for label in PAGES if label in self.urls})

    async def _start_service(self, name: str, settings: Settings) -> None:
        service = service_class(name)(settings)
        self.services[name] = service
        await service.start()
        self.urls.update(service.urls)

    async def stop(self) -> None:
        link_sites({})
        for name in reversed(list(self.services)):
            try:
                await asyncio.wait_for(self.services[name].stop(), 10)
            except Exception as exc:
                log.warning("stopping %s: %r", name, exc)
        self.services.clear()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.broker.stop(), 10)
            self.broker = None

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


#: The pages a person opens, in the order the demo prints them.
PAGES = ("web store", "workshop", "CRM", "phone orders", "mailbox", "order board",
         "payment gateway", "management")


def print_urls(store: Store, out: TextIO) -> None:
    width = max(len(label) for label in store.urls)
    out.write("\nMacGrudder's kilt store is open.\n\n")
    for label in (*PAGES, *sorted(set(store.urls) - set(PAGES))):
        if label in store.urls:
            out.write(f"  {label:<{width}}  {store.urls[label]}\n")
    if store.broker is not None:
        if store.persistent_broker:
            out.write(
                f"\nThe broker keeps orders in flight in {store.broker_dir}: they carry on"
                "\nafter a restart (--memory-only keeps nothing).\n"
            )
        else:
            out.write("\nThe broker is memory-only: orders in flight are lost when it stops.\n")
        if store.broker.ctl_path is not None:
            out.write(
                f"\nInspect the broker with kiltmq ctl, e.g.:\n"
                f"  kiltmq ctl --socket {store.broker.ctl_path} list_queues\n"
            )
    out.write(
        "\nBuy a kilt in the web store, enter one in the CRM or take one by phone;"
        "\nfollow it on the order board, finish it in the workshop, read the mail"
        "\nin the mailbox. Press Ctrl-C to stop.\n\n"
    )
    out.flush()


async def run_demo(
    *,
    data_dir: Path,
    amqp_url: str | None,
    prefix: str,
    host: str,
    fixed_ports: bool,
    amqp_port: int,
    persistent_broker: bool = True,
    queue_type: str = "",
    management_url: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the store until SIGINT or SIGTERM."""
    from kiltmq.broker.store import StoreError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Store(
            data_dir=data_dir,
            amqp_url=amqp_url,
            prefix=prefix,
            host=host,
            fixed_ports=fixed_ports,
            amqp_port=amqp_port,
            seed=True,
            persistent_broker=persistent_broker,
            queue_type=queue_type,
            management_url=management_url,
        ) as store:
            print_urls(store, out)
            await stop.wait()
            out.write("Stopping the kilt store...\n")
            out.flush()
    except StoreError as exc:  # e.g. another demo runs on the same data directory
        out.write(f"kiltmq demo: {exc}\n")
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    out.write("Stopped.\n")
    return 0
