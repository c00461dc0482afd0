"""A scenario's exchange, queues and bindings on a broker: declared, then deleted.

The topic scenario binds its queues with :data:`~kiltmq.bench.scenarios.TOPIC_BINDINGS`
distinct patterns (``bench.N.*``, ``bench.N.#`` and ``*.N.event`` in turn, N from 0),
pattern N to queue N mod the number of queues; the producer cycles through the routing
keys ``bench.N.event`` for every 7th N, each of which matches exactly one pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiltmq.bench.loadclient import LoadClient
from kiltmq.bench.scenarios import Scenario
from kiltmq.protocol import spec

__all__ = ["Topology", "topic_pattern"]

_BIND_BATCH = 500


def topic_pattern(n: int) -> str:
    """The topic scenario's binding pattern number ``n``; only ``bench.n.event`` matches."""
    return (f"bench.{n}.*", f"bench.{n}.#", f"*.{n}.event")[n % 3]


@dataclass(frozen=True)
class Topology:
    """The names one run of a scenario uses."""

    scenario: Scenario
    exchange: str  # "": the default exchange
    queues: tuple[str, ...]

    @classmethod
    def named(cls, scenario: Scenario, prefix: str) -> Topology:
        """The scenario's exchange and queues, their names starting with ``prefix``."""
        exchange = f"{prefix}.x" if scenario.exchange_type else ""
        return cls(scenario, exchange, tuple(f"{prefix}.{i}" for i in range(scenario.queues)))

    @property
    def routing_keys(self) -> tuple[str, ...]:
        """What the producer publishes with, in turn."""
        if self.scenario.topic_bindings:
            return tuple(f"bench.{n}.event" for n in range(0, self.scenario.topic_bindings, 7))
        return ("" if self.exchange else self.queues[0],)

    async def declare(self, ctl: LoadClient) -> None:
        """Declare everything on channel 1 of ``ctl``."""
        scenario = self.scenario
        if self.exchange:
            await ctl.request(
                1,
                spec.ExchangeDeclare(exchange=self.exchange, type=scenario.exchange_type),
                spec.ExchangeDeclareOk,
            )
        for queue in self.queues:
            await ctl.request(
                1, spec.QueueDeclare(queue=queue, durable=scenario.durable), spec.QueueDeclareOk
            )
            if scenario.exchange_type == "fanout":
                await ctl.request(
                    1, spec.QueueBind(queue=queue, exchange=self.exchange), spec.QueueBindOk
                )
        if scenario.topic_bindings:
            # Sent without waiting (no-wait), in batches; a broker handles a channel's methods
            # in order, so the final queue.declare's answer comes after the last binding.
            for n in range(scenario.topic_bindings):
                bind = spec.QueueBind(
                    queue=self.queues[n % len(self.queues)],
                    exchange=self.exchange,
                    routing_key=topic_pattern(n),
                    no_wait=True,
                )
                ctl.core.send_method(1, bind)
                if n % _BIND_BATCH == _BIND_BATCH - 1:
                    ctl.flush()
            ctl.flush()
            await ctl.request(
                1,
                spec.QueueDeclare(queue=self.queues[0], durable=scenario.durable, passive=True),
                spec.QueueDeclareOk,
                timeout=120,
            )

    async def depth(self, ctl: LoadClient) -> int:
        """Messages in all the queues."""
        total = 0
        for queue in self.queues:
            ok = await ctl.request(
                1,
                spec.QueueDeclare(queue=queue, durable=self.scenario.durable, passive=True),
                spec.QueueDeclareOk,
            )
            total += ok.message_count
        return total

    async def delete(self, ctl: LoadClient) -> None:
        """Delete the queues (and their bindings) and the exchange."""
        for queue in self.queues:
            await ctl.request(1, spec.QueueDelete(queue=queue), spec.QueueDeleteOk, timeout=60)
        if self.exchange:
            await ctl.request(1, spec.ExchangeDelete(exchange=self.exchange), spec.ExchangeDeleteOk)
