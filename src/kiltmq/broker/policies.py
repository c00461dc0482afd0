"""The policies and operator policies of one virtual host, applied to its queues and
exchanges: at once to those that exist when a policy is set, changed or cleared, and to
each new one as it is declared. Kept in the store (kinds ``policy`` and
``operator_policy``, keyed by name)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiltmq.broker.declaration import UNSUPPORTED_POLICIES
from kiltmq.broker.exchange import Exchange
from kiltmq.broker.policy import Policy, parse_policy, pick
from kiltmq.broker.queue import Queue
from kiltmq.broker.store import Definition, Store

__all__ = ["POLICY_KINDS", "VhostPolicies"]

#: The store's kinds of definition for policies and operator policies.
POLICY_KINDS = ("policy", "operator_policy")


def _record(policy: Policy) -> Definition:
    return {
        "name": policy.name,
        "pattern": policy.pattern,
        "apply-to": policy.apply_to,
        "priority": policy.priority,
        "definition": dict(policy.definition),
    }


class VhostPolicies:
    """Policies by name, operator policies by name, and where they apply."""

    def __init__(
        self,
        vhost: str,
        store: Store,
        queues: Mapping[str, Queue],
        exchanges: Mapping[str, Exchange],
    ) -> None:
        self.vhost = vhost
        self.store = store
        self._queues = queues
        self._exchanges = exchanges
        self.policies: dict[str, Policy] = {}
        self.operator_policies: dict[str, Policy] = {}

    def _table(self, operator: bool) -> dict[str, Policy]:
        return self.operator_policies if operator else self.policies

    def set(self, policy: Policy, *, store: bool = True) -> None:
        """Add or replace ``policy`` (an operator policy if ``policy.operator``) and
        apply what changes."""
        self._table(policy.operator)[policy.name] = policy
        if store:
            kind = POLICY_KINDS[policy.operator]
            self.store.definition_added(self.vhost, kind, _record(policy))
        self.apply_all()

    def clear(self, name: str, *, operator: bool = False) -> bool:
        """Remove a policy; False if there is none of that name."""
        if self._table(operator).pop(name, None) is None:
            return False
        self.store.definition_removed(self.vhost, POLICY_KINDS[operator], {"name": name})
        self.apply_all()
        return True

    def restore(self, kind: str, record: Mapping[str, Any]) -> None:
        """Take back a policy the store kept (at start)."""
        self.set(
            parse_policy(
                self.vhost,
                str(record["name"]),
                record["pattern"],
                record["definition"],
                priority=record.get("priority", 0),
                apply_to=record.get("apply-to", "all"),
                operator=kind == "operator_policy",
            ),
            store=False,
        )

    # -- applying ---------------------------------------------------------------------

    def apply_queue(self, queue: Queue) -> None:
        """Give ``queue`` the policy and operator policy that match it and that its type
        supports (nothing happens when they are the ones it has)."""
        unsupported = UNSUPPORTED_POLICIES.get(queue.type, frozenset())
        policy = pick(self.policies.values(), "queue", queue.name, unsupported)
        operator = pick(self.operator_policies.values(), "queue", queue.name, unsupported)
        if policy == queue.policy and operator == queue.operator_policy:
            return
        queue.apply_policy(policy, operator)

    def apply_exchange(self, exchange: Exchange) -> None:
        policy = pick(self.policies.values(), "exchange", exchange.name)
        if policy != exchange.policy:
            exchange.apply_policy(policy)

    def apply_all(self) -> None:
        for queue in list(self._queues.values()):
            self.apply_queue(queue)
        for exchange in self._exchanges.values():
            self.apply_exchange(exchange)
