"""Administration of policies and operator policies: the part of
:class:`~kiltmq.broker.admin.Admin` that ``kiltmq ctl set_policy`` and the management
API use. Runs on the broker's loop; changes go to the store and apply at once to the
vhost's queues and exchanges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kiltmq.broker.admin_error import AdminError, NotFound
from kiltmq.broker.policy import Policy, PolicyError, parse_policy
from kiltmq.broker.vhost import VirtualHost

__all__ = ["PolicyAdmin", "PolicyBroker", "PolicyInvalid"]


class PolicyBroker(Protocol):
    """What :class:`PolicyAdmin` needs of the broker."""

    @property
    def vhosts(self) -> Mapping[str, VirtualHost]: ...


class PolicyInvalid(AdminError, ValueError):
    """A policy RabbitMQ would refuse: ``str()`` is RabbitMQ's reason on one line,
    :attr:`reason` its text in the HTTP API's 400 answer ("Validation failed\\n\\n...")."""

    def __init__(self, error: PolicyError) -> None:
        super().__init__(str(error))
        self.reason = error.reason


class PolicyAdmin:
    """Policy methods of :class:`~kiltmq.broker.admin.Admin` (a mixin)."""

    broker: PolicyBroker

    def _policy_vhost(self, name: str) -> VirtualHost:
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise NotFound(f"no such vhost '{name}'")
        return vhost

    def policies(self, vhost: str | None = None, *, operator: bool = False) -> list[Policy]:
        """The policies (operator policies) of ``vhost``, or of every vhost (None), by
        vhost and name."""
        hosts = [self._policy_vhost(vhost)] if vhost is not None else [
            v for _n, v in sorted(self.broker.vhosts.items())
        ]
        found: list[Policy] = []
        for host in hosts:
            table = host.policies.operator_policies if operator else host.policies.policies
            found.extend(p for _n, p in sorted(table.items()))
        return found

    def policy(self, vhost: str, name: str, *, operator: bool = False) -> Policy:
        host = self._policy_vhost(vhost)
        table = host.policies.operator_policies if operator else host.policies.policies
        policy = table.get(name)
        if policy is None:
            kind = "operator policy" if operator else "policy"
            raise NotFound(f"no such {kind} '{name}' in vhost '{vhost}'")
        return policy

    def set_policy(
        self,
        vhost: str,
        name: str,
        pattern: Any,
        definition: Any,
        *,
        priority: Any = 0,
        apply_to: Any = "all",
        operator: bool = False,
    ) -> Policy:
        """Add or replace a policy (``definition``: a JSON object or its text), as
        ``rabbitmqctl set_policy``; it applies at once to existing queues and exchanges.
        :class:`PolicyInvalid` with RabbitMQ's reason if RabbitMQ would refuse it."""
        host = self._policy_vhost(vhost)
        if not isinstance(name, str) or not name:
            raise PolicyInvalid(PolicyError("a policy name cannot be empty"))
        try:
            policy = parse_policy(
                vhost, name, pattern, definition, priority=priority, apply_to=apply_to,
                operator=operator,
            )
        except PolicyError as error:
            raise PolicyInvalid(error) from None
        host.policies.set(policy)
        return policy

    def clear_policy(self, vhost: str, name: str, *, operator: bool = False) -> None:
        """Remove a policy; what it set goes from its queues and exchanges at once."""
        self.policy(vhost, name, operator=operator)
        self._policy_vhost(vhost).policies.clear(name, operator=operator)

    def set_operator_policy(
        self, vhost: str, name: str, pattern: Any, definition: Any, *,
        priority: Any = 0, apply_to: Any = "all",
    ) -> Policy:
        """:meth:`set_policy` for an operator policy (``rabbitmqctl
        set_operator_policy``: only the numeric limits of :data:`OPERATOR_KEYS
        <kiltmq.broker.policy.OPERATOR_KEYS>`)."""
        return self.set_policy(
            vhost, name, pattern, definition, priority=priority, apply_to=apply_to,
            operator=True,
        )

    def clear_operator_policy(self, vhost: str, name: str) -> None:
        self.clear_policy(vhost, name, operator=True)

    def operator_policies(self, vhost: str | None = None) -> list[Policy]:
        return self.policies(vhost, operator=True)
