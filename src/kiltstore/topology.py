"""Every exchange, queue and binding of the kilt store, in one place.

Names carry a prefix (``KILTSTORE_PREFIX``, default ``kiltstore``) so that several
stores, or test runs, can share one broker without seeing each other's messages.

Order events travel on the ``orders`` topic exchange with routing key
``order.<state>.<source>`` (see :class:`kiltstore.domain.OrderEvent`), so a service
subscribes to a state (``order.approved.*``), a source (``order.*.web``) or all
(``order.#``). Raw orders from the three sources enter on the ``intake`` direct
exchange with the source as routing key.

Every work queue is durable and dead-letters to ``dead-letters``: a message a
consumer rejects for good (a poison message) is kept there, not lost.

Queues are classic, or quorum (:attr:`Topology.queue_type`, for a RabbitMQ cluster:
replicated, so a node's loss loses no message). Every queue here is durable and
neither exclusive nor auto-delete, as quorum queues must be, the reply queues of the
Return Address pattern included. A quorum queue that dead-letters does it
``at-least-once`` (which needs ``x-overflow: reject-publish``): the message stays in
the queue until the target queue confirms it, so a retry delay expiring while a node
dies still brings the message back.

:func:`declare` declares it all through kiltmq's client; :func:`mermaid` draws it
and :func:`channel_table` lists it (docs/kiltstore.md embeds both, and a test keeps
them in step: ``python -m kiltstore.topology`` and ``python -m kiltstore.topology
table`` print them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kiltmq

DEFAULT_PREFIX = "kiltstore"
#: The queue types the store can declare (x-queue-type).
QUEUE_TYPES = ("classic", "quorum")


@dataclass(frozen=True)
class ExchangeSpec:
    key: str  # short name, without the prefix
    type: str
    pattern: str  # the Enterprise Integration Pattern this channel plays
    description: str


@dataclass(frozen=True)
class QueueSpec:
    key: str
    bindings: tuple[tuple[str, str], ...]  # (exchange key, routing key)
    consumer: str  # the service that reads it ("" if kept for people to inspect)
    pattern: str
    description: str
    dead_letter: bool = True  # dead-letter rejected messages to ``dead-letters``
    arguments: tuple[tuple[str, str], ...] = ()  # more x-arguments of the queue
    binding_arguments: tuple[tuple[str, str], ...] = ()  # of each of its bindings


@dataclass(frozen=True)
class PublisherSpec:
    service: str
    exchange: str
    routing_keys: tuple[str, ...]
    pattern: str


INTAKE = "intake"
ORDERS = "orders"
INVALID = "invalid-messages"
DEAD_LETTERS = "dead-letters"
RETRY = "retry"
COMMANDS = "commands"
HISTORY = "history"
#: Routing key of a customer's request to cancel an order (on ``commands``).
CANCEL = "cancel"
#: The default exchange: replies go to the queue named by the Return Address.
DEFAULT_EXCHANGE = ""

#: Seconds a consumer waits before each new attempt at a message it failed to handle
#: for a passing reason; after the last, the message goes to the Dead Letter Channel.
RETRY_DELAYS: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0)
#: Header counting a message's retries (the consumer's own delivery count).
RETRY_COUNT = "x-retry-count"
#: Header choosing the delay queue of a message in the ``retry`` exchange.
RETRY_LEVEL = "retry-level"

EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(
        INTAKE,
        "direct",
        "Datatype Channel (one routing key per source format)",
        "raw orders from the three sources, each in its own format",
    ),
    ExchangeSpec(
        ORDERS,
        "topic",
        "Publish-Subscribe Channel of the Canonical Data Model",
        "order events order.<state>.<source>, carrying the canonical order",
    ),
    ExchangeSpec(
        INVALID,
        "fanout",
        "Invalid Message Channel",
        "raw messages no translator can read, with the reason in a header",
    ),
    ExchangeSpec(
        DEAD_LETTERS,
        "fanout",
        "Dead Letter Channel",
        "messages a consumer gave up on, with the reason in headers (poison messages)",
    ),
    ExchangeSpec(
        RETRY,
        "headers",
        "Retry with back-off (one delay queue per attempt)",
        "messages to try again later, routed by their retry-level header",
    ),
    ExchangeSpec(
        COMMANDS,
        "direct",
        "Command Message channel (one routing key per command)",
        "requests to a service: cancel (a customer's cancellation, the Saga's first step)",
    ),
    ExchangeSpec(
        HISTORY,
        "fanout",
        "Message History (each service reports every message it handled)",
        "one record per message handled: service, queue, message id, order, outcome",
    ),
)

QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(
        "normalizer",
        ((INTAKE, "web"), (INTAKE, "crm"), (INTAKE, "phone")),
        "normalizer",
        "Normalizer (one Message Translator per source)",
        "translates each source's format to the canonical order",
    ),
    QueueSpec(
        "validator",
        ((ORDERS, "order.received.*"),),
        "validator",
        "Content-Based Router (validation)",
        "routes each order to order.valid or order.invalid",
    ),
    QueueSpec(
        "billing",
        ((ORDERS, "order.valid.*"), (ORDERS, "order.cancelled.*")),
        "billing",
        "Idempotent Receiver + Channel Adapter to the payment gateway",
        "charges valid orders (approved or declined); refunds cancelled ones (the Saga's"
        " compensation)",
    ),
    QueueSpec(
        "workshop",
        ((ORDERS, "order.approved.*"),),
        "workshop",
        "Point-to-Point Channel to a Message Endpoint (the workshop page)",
        "approved orders for MacGrudder to make",
    ),
    QueueSpec(
        "shipping",
        ((ORDERS, "order.finished.*"),),
        "shipping",
        "Publish-Subscribe subscriber, Idempotent Receiver",
        "records a shipment and a label per finished kilt",
    ),
    QueueSpec(
        "mailer",
        (
            (ORDERS, "order.invalid.*"),
            (ORDERS, "order.declined.*"),
            (ORDERS, "order.approved.*"),
            (ORDERS, "order.finished.*"),
            (ORDERS, "order.shipped.*"),
            (ORDERS, "order.cancelled.*"),
            (ORDERS, "order.refunded.*"),
        ),
        "mailer",
        "Publish-Subscribe subscriber, Channel Adapter to SMTP",
        "e-mails the customer at each change they care about",
    ),
    QueueSpec(
        "webstore-status",
        ((ORDERS, "order.*.web"),),
        "webstore",
        "Publish-Subscribe subscriber (Selective Consumer by source)",
        "status of web orders, pushed live to the order status page",
    ),
    QueueSpec(
        "board",
        ((ORDERS, "order.#"), (INVALID, "")),
        "board",
        "Wire Tap / Message Store",
        "every event of every order, for the order board",
        dead_letter=False,
    ),
    QueueSpec(
        "cancellations",
        ((COMMANDS, CANCEL),),
        "workshop",
        "Point-to-Point Channel of Command Messages (Saga: cancel unless started)",
        "customers' cancellations; the workshop cancels what it has not started",
    ),
    QueueSpec(
        "history",
        ((HISTORY, ""),),
        "board",
        "Message History / Message Store",
        "what each service did with each message, for the board's order paths",
        dead_letter=False,
    ),
    QueueSpec(
        "invalid-messages",
        ((INVALID, ""),),
        "",
        "Invalid Message Channel (kept for people to inspect)",
        "untranslatable raw messages",
        dead_letter=False,
    ),
    QueueSpec(
        "dead-letters",
        ((DEAD_LETTERS, ""),),
        "board",
        "Dead Letter Channel (shown on the board, to retry or discard)",
        "messages given up on, with x-dead-reason and x-dead-queue headers",
        dead_letter=False,
    ),
    *(
        QueueSpec(
            f"retry-{level}",
            ((RETRY, ""),),
            "",
            "Retry delay (per-message TTL, then dead-lettered back to its queue)",
            f"messages waiting for retry {level}; on expiry they return to their work queue",
            dead_letter=False,
            arguments=(("x-dead-letter-exchange", DEFAULT_EXCHANGE),),
            binding_arguments=(("x-match", "all"), (RETRY_LEVEL, str(level))),
        )
        for level in range(1, len(RETRY_DELAYS) + 1)
    ),
    QueueSpec(
        "phone-replies",
        (),
        "phone",
        "Return Address of phone slips",
        "accepted (with the order id) or refused (with the reasons), then approved or "
        "declined (the payment), per slip",
    ),
    QueueSpec(
        "crm-replies",
        (),
        "crm-adapter",
        "Return Address of CRM orders",
        "accepted or refused, then approved or declined, per CRM order; the adapter tells "
        "the CRM",
    ),
)

PUBLISHERS: tuple[PublisherSpec, ...] = (
    PublisherSpec("webstore", INTAKE, ("web",), "Message Endpoint"),
    PublisherSpec("crm-adapter", INTAKE, ("crm",), "Channel Adapter (polls the CRM over XML-RPC)"),
    PublisherSpec("phone", INTAKE, ("phone",), "Message Endpoint"),
    PublisherSpec("normalizer", ORDERS, ("order.received.*",), "Normalizer"),
    PublisherSpec("normalizer", INVALID, ("",), "Invalid Message Channel"),
    PublisherSpec(
        "validator", ORDERS, ("order.valid.*", "order.invalid.*"), "Content-Based Router"
    ),
    PublisherSpec("webstore", COMMANDS, (CANCEL,), "Command Message (cancel an order)"),
    PublisherSpec(
        "billing",
        ORDERS,
        ("order.approved.*", "order.declined.*", "order.refunded.*"),
        "Message Endpoint (Saga compensation: the refund)",
    ),
    PublisherSpec(
        "workshop",
        ORDERS,
        ("order.started.*", "order.finished.*", "order.cancelled.*"),
        "Message Endpoint (the buttons; the Saga's cancel)",
    ),
    PublisherSpec("shipping", ORDERS, ("order.shipped.*",), "Message Endpoint"),
)

#: Who answers at a Return Address (``reply_to`` of an intake message).
REPLIERS: tuple[tuple[str, str], ...] = (
    ("normalizer", "refused: untranslatable"),
    ("validator", "accepted or refused"),
    ("billing", "approved or declined"),
)


@dataclass(frozen=True)
class Topology:
    """The store's names under one prefix."""

    prefix: str = DEFAULT_PREFIX
    exchanges: tuple[ExchangeSpec, ...] = field(default=EXCHANGES)
    queues: tuple[QueueSpec, ...] = field(default=QUEUES)
    #: "classic", or "quorum" for a cluster (see the module docstring).
    queue_type: str = "classic"

    def __post_init__(self) -> None:
        if self.queue_type not in QUEUE_TYPES:
            raise ValueError(f"unknown queue type {self.queue_type!r}")

    def exchange(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def queue(self, key: str) -> str:
        return f"{self.prefix}.{key}"

    def queue_arguments(self, spec: QueueSpec) -> dict[str, Any]:
        arguments: dict[str, Any] = dict(spec.arguments)
        if spec.dead_letter:
            arguments["x-dead-letter-exchange"] = self.exchange(DEAD_LETTERS)
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
            if "x-dead-letter-exchange" in arguments:
                arguments["x-dead-letter-strategy"] = "at-least-once"
                arguments["x-overflow"] = "reject-publish"
        return arguments

    async def declare(self, channel: kiltmq.Channel) -> None:
        """Declare every exchange, queue and binding (idempotent: safe to repeat)."""
        for exchange in self.exchanges:
            await channel.exchange_declare(
                self.exchange(exchange.key), exchange.type, durable=True
            )
        for queue in self.queues:
            await channel.queue_declare(
                self.queue(queue.key), durable=True, arguments=self.queue_arguments(queue)
            )
            for exchange_key, routing_key in queue.bindings:
                await channel.queue_bind(
                    self.queue(queue.key),
                    self.exchange(exchange_key),
                    routing_key,
                    arguments=dict(queue.binding_arguments) or None,
                )


def _node(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


#: Links that are not messages: (from, to, how). Drawn dotted.
DIRECT_LINKS: tuple[tuple[str, str, str], ...] = (
    ("crm-adapter", "crm", "polls over XML-RPC"),
    ("billing", "payment-gateway", "charges over HTTP"),
    ("mailer", "mailbox", "sends over SMTP"),
)


def mermaid() -> str:
    """The topology as a Mermaid flowchart (names without the prefix)."""
    out = ["flowchart LR"]
    services = sorted(
        {p.service for p in PUBLISHERS} | {q.consumer for q in QUEUES if q.consumer}
    )
    for service in services:
        out.append(f'    svc_{_node(service)}(["{service}"])')
    for outside in sorted({to for _, to, _ in DIRECT_LINKS}):
        out.append(f'    ext_{_node(outside)}[("{outside}")]')
    for ex in EXCHANGES:
        label = f"{ex.key}<br/>{ex.type}<br/><i>{ex.pattern}</i>"
        out.append(f'    ex_{_node(ex.key)}{{{{"{label}"}}}}')
    for q in QUEUES:
        out.append(f'    q_{_node(q.key)}[["{q.key}<br/><i>{q.pattern}</i>"]]')
    for p in PUBLISHERS:
        keys = "<br/>".join(k or "(fanout)" for k in p.routing_keys)
        out.append(f'    svc_{_node(p.service)} -->|"{keys}"| ex_{_node(p.exchange)}')
    for q in QUEUES:
        by_exchange: dict[str, list[str]] = {}
        for exchange_key, routing_key in q.bindings:
            matched = " ".join(f"{k}={v}" for k, v in q.binding_arguments if k != "x-match")
            by_exchange.setdefault(exchange_key, []).append(routing_key or matched or "(all)")
        for exchange_key, bound in by_exchange.items():
            label = "<br/>".join(bound)
            out.append(f'    ex_{_node(exchange_key)} -->|"{label}"| q_{_node(q.key)}')
        if q.consumer:
            out.append(f"    q_{_node(q.key)} --> svc_{_node(q.consumer)}")
    work = [q.key for q in QUEUES if q.dead_letter]
    out.append(f'    work_queues[/"work queues: {", ".join(work)}"/]')
    out.append(f'    work_queues -.->|"given up on (x-dead-reason)"| ex_{_node(DEAD_LETTERS)}')
    for service, answers in REPLIERS:
        for q in QUEUES:
            if q.key.endswith("-replies"):
                out.append(f'    svc_{_node(service)} -.->|"reply_to: {answers}"| q_{_node(q.key)}')
    out.append('    svc_board -.->|"retry button"| work_queues')
    out.append(f'    work_queues -.->|"failed: retry-level n"| ex_{_node(RETRY)}')
    for source, target, how in DIRECT_LINKS:
        out.append(f'    svc_{_node(source)} -.->|"{how}"| ext_{_node(target)}')
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def channel_table() -> str:
    """Every exchange and queue as a Markdown table: kind or bindings, pattern, what it
    carries, who reads it (docs/kiltstore.md embeds it, and a test keeps the two in step).
    The retry delay queues share one row."""
    rows = ["| channel | kind or bindings | pattern | carries |", "| --- | --- | --- | --- |"]
    for ex in EXCHANGES:
        rows.append(f"| `{ex.key}` exchange | {ex.type} | {_cell(ex.pattern)} | "
                    f"{_cell(ex.description)} |")
    retry_levels = [q for q in QUEUES if q.key.startswith("retry-")]
    for q in QUEUES:
        if q in retry_levels[1:]:
            continue
        name = f"`{q.key}` queue"
        bindings = []
        for exchange_key, routing_key in q.bindings:
            matched = " ".join(f"{k}={v}" for k, v in q.binding_arguments if k != "x-match")
            bindings.append(f"`{exchange_key}`:`{routing_key or matched or '(all)'}`")
        carries = q.description
        if q is retry_levels[0]:
            name = f"`{q.key}` ... `{retry_levels[-1].key}` queues"
            bindings = [f"`{RETRY}`:`{RETRY_LEVEL}=n`"]
            carries = carries.replace("retry 1", "retry n")
        reader = f"read by {q.consumer}" if q.consumer else (
            "kept for people to inspect" if q.key == INVALID else "read by nobody")
        rows.append(f"| {name} | {', '.join(bindings) or '(default exchange, by name)'} | "
                    f"{_cell(q.pattern)} | {_cell(carries)}; {reader} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    import sys

    print(channel_table() if sys.argv[1:] == ["table"] else mermaid(), end="")
