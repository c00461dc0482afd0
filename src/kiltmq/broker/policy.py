"""Policies and operator policies, as RabbitMQ 3.10's: a name, a regex matched
(unanchored) against queue or exchange names of one vhost, what they apply to
(``queues``, ``exchanges`` or ``all``), a priority and a definition of settings.

Of the policies matching an object only the one with the highest priority applies (of
equals, the one whose name sorts first; RabbitMQ leaves that undefined). Operator
policies apply to queues only, chosen the same way, and combine with the user policy:
for the numeric limits the lower value wins (:data:`OPERATOR_KEYS`). Against the
queue's own x-arguments, :func:`resolve_queue_arguments` applies RabbitMQ's rule for
each key: the lower value for limits and TTLs, the x-argument for the others.

Validation errors are :class:`PolicyError` with RabbitMQ's reason, values written as
Erlang terms as RabbitMQ prints them (``<<"a">> is not a valid maximum length``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kiltmq.broker.auth import pcre_error

__all__ = [
    "APPLY_TO",
    "OPERATOR_KEYS",
    "Policy",
    "PolicyError",
    "erlang_term",
    "merge_definitions",
    "parse_policy",
    "pick",
    "resolve_queue_arguments",
]

APPLY_TO = ("queues", "exchanges", "all")

#: Definition keys an operator policy may have; where both kinds set one, the lower wins.
OPERATOR_KEYS = (
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
)

#: Queue settings a policy may give, and how a queue's own x-argument combines with
#: the policy's value: "min" the lower wins, "arg" the x-argument wins.
QUEUE_KEYS = {
    "expires": "min",
    "message-ttl": "min",
    "max-length": "min",
    "max-length-bytes": "min",
    "dead-letter-exchange": "arg",
    "dead-letter-routing-key": "arg",
    "overflow": "arg",
    "delivery-limit": "min",
    "dead-letter-strategy": "arg",
    "max-age": "arg",
    "stream-max-segment-size-bytes": "arg",
}


class PolicyError(ValueError):
    """A policy RabbitMQ would refuse; the message is RabbitMQ's reason (one line)."""

    @property
    def reason(self) -> str:
        """The reason as RabbitMQ's HTTP API gives it in a 400 answer."""
        return f"Validation failed\n\n{self}\n"


# -- Erlang terms ---------------------------------------------------------------------


def _erlang_float(value: float) -> str:
    """A float as Erlang's ``~p`` writes it: the shortest digits that read back, in the
    shorter of plain and scientific notation (plain on a tie)."""
    if math.isinf(value) or math.isnan(value):
        return repr(value)
    sign = "-" if value < 0 else ""
    mantissa, _, exp = f"{abs(value)!r}".partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exp) if exp else 0)  # the decimal point after this digit
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    sig = stripped.rstrip("0")
    if not sig:
        return sign + "0.0"
    sci = f"{sig[0]}.{sig[1:] or '0'}e{point - 1}"
    if point <= 0:
        plain = "0." + "0" * -point + sig
    elif point >= len(sig):
        plain = sig + "0" * (point - len(sig)) + ".0"
    else:
        plain = sig[:point] + "." + sig[point:]
    return sign + (sci if len(sci) < len(plain) else plain)


_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def erlang_term(value: Any) -> str:
    """A JSON value as RabbitMQ prints it in its messages (Erlang's ``~p``)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _erlang_float(value)
    if isinstance(value, str):
        escaped = value.translate(_ESCAPES)
        return f'<<"{escaped}">>'
    if isinstance(value, Mapping):
        items = ",".join(f"{erlang_term(k)} => {erlang_term(v)}" for k, v in sorted(value.items()))
        return "#{" + items + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(erlang_term(v) for v in value) + "]"
    return repr(value)


# -- policies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """One policy (or operator policy) of a vhost, validated."""

    vhost: str
    name: str
    pattern: str
    apply_to: str
    priority: int | float
    definition: dict[str, Any]
    operator: bool = False
    _regex: re.Pattern[str] = field(repr=False, compare=False, default=re.compile(""))

    def matches(self, kind: str, name: str) -> bool:
        """Whether the policy applies to the ``kind`` ("queue" or "exchange") ``name``."""
        if self.apply_to != "all" and self.apply_to != kind + "s":
            return False
        return self._regex.search(name) is not None

    def as_json(self) -> dict[str, Any]:
        """As RabbitMQ's HTTP API and definitions list a policy."""
        return {
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to,
            "definition": dict(self.definition),
            "priority": self.priority,
        }


def pick(
    policies: Iterable[Policy],
    kind: str,
    name: str,
    unsupported: Collection[str] = (),
) -> Policy | None:
    """The policy that applies to ``kind`` ``name``: the highest priority among those
    matching, of equals the first by name. A policy with a key of ``unsupported`` (those
    the queue's type does not support) does not apply, as in RabbitMQ 3.10."""
    best: Policy | None = None
    for policy in policies:
        if not policy.matches(kind, name):
            continue
        if unsupported and any(key in unsupported for key in policy.definition):
            continue
        if (
            best is None
            or policy.priority > best.priority
            or (policy.priority == best.priority and policy.name < best.name)
        ):
            best = policy
    return best


def merge_definitions(policy: Policy | None, operator: Policy | None) -> dict[str, Any]:
    """The effective definition of a user policy and an operator policy, keys sorted
    (RabbitMQ's ``effective_policy_definition``)."""
    merged: dict[str, Any] = dict(policy.definition) if policy is not None else {}
    if operator is not None:
        for key, value in operator.definition.items():
            current = merged.get(key)
            merged[key] = value if current is None else min(current, value)
    return dict(sorted(merged.items()))


def resolve_queue_arguments(
    arguments: Mapping[str, Any], definition: Mapping[str, Any]
) -> dict[str, Any]:
    """A queue's x-arguments with an effective policy ``definition`` folded in, as the
    queue then behaves (``x-max-length`` the lower of argument and policy, ...)."""
    resolved = dict(arguments)
    for key, rule in QUEUE_KEYS.items():
        value = definition.get(key)
        if value is None:
            continue
        arg = "x-" + key
        current = resolved.get(arg)
        if current is None:
            resolved[arg] = value
        elif rule == "min" and isinstance(current, int) and not isinstance(current, bool):
            resolved[arg] = min(current, value)
    return resolved


# -- validation ------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(minimum: int, what: str) -> Any:
    def check(value: Any) -> str | None:
        if _is_int(value) and value >= minimum:
            return None
        return f"{erlang_term(value)} is not a valid {what}"

    return check


def _string(what: str) -> Any:
    def check(value: Any) -> str | None:
        return None if isinstance(value, str) else f"{erlang_term(value)} is not a valid {what}"

    return check


def _one_of(choices: tuple[str, ...], message: str) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else message.format(erlang_term(value))

    return check


#: RabbitMQ's core validators (rabbit_policies), checked in key order.
_CORE = {
    "alternate-exchange": _string("alternate exchange name"),
    "dead-letter-exchange": _string("dead letter exchange name"),
    "dead-letter-routing-key": _string("dead letter routing key"),
    "dead-letter-strategy": _one_of(
        ("at-most-once", "at-least-once"), "{} is not a valid dead letter strategy"
    ),
    "delivery-limit": _integer(0, "delivery limit"),
    "expires": _integer(1, "queue expiry"),
    "initial-cluster-size": _integer(0, "cluster size"),
    "max-age": _string("max age"),
    "max-in-memory-bytes": _integer(0, "maximum memory in bytes"),
    "max-in-memory-length": _integer(0, "maximum memory in bytes"),
    "max-length": _integer(0, "maximum length"),
    "max-length-bytes": _integer(0, "maximum length in bytes"),
    "message-ttl": _integer(0, "message TTL"),
    "overflow": _one_of(
        ("drop-head", "reject-publish", "reject-publish-dlx"), "{} is not a valid overflow value"
    ),
    "queue-leader-locator": _one_of(
        ("client-local", "random", "least-leaders"),
        "{} is not a valid queue leader locator value",
    ),
    "queue-mode": _one_of(("default", "lazy"), "{} is not a valid queue-mode value"),
    "queue-version": _one_of((1, 2), "{} is not a valid queue-version value"),  # type: ignore[arg-type]
    "stream-max-segment-size-bytes": _integer(0, "segment size"),
}
_HA_KEYS = (
    "ha-mode",
    "ha-params",
    "ha-promote-on-failure",
    "ha-promote-on-shutdown",
    "ha-sync-batch-size",
    "ha-sync-mode",
)
_LOCATOR = ("client-local", "min-masters", "random")


def _check_ha(definition: Mapping[str, Any]) -> str | None:
    """RabbitMQ's checks of classic mirroring keys (accepted; one node mirrors nothing)."""
    mode = definition.get("ha-mode")
    params = definition.get("ha-params")
    if mode is None:
        if any(k in definition for k in ("ha-params", "ha-sync-mode", "ha-promote-on-shutdown")):
            return (
                "ha-mode must be specified to specify ha-params, ha-sync-mode or "
                "ha-promote-on-shutdown"
            )
    elif mode == "all":
        if params is not None:
            return 'ha-mode="all" does not take parameters'
    elif mode == "exactly":
        if params is None:
            return 'ha-mode="exactly" takes an integer, none given'
        if not _is_int(params) or params <= 0:
            return f'ha-mode="exactly" takes an integer, {erlang_term(params)} given'
    elif mode == "nodes":
        if params is None:
            return 'ha-mode="nodes" takes a list, none given'
        if not isinstance(params, list):
            return f'ha-mode="nodes" takes a list, {erlang_term(params)} given'
    else:
        return f"{erlang_term(mode)} is not a valid ha-mode value"
    sync = definition.get("ha-sync-mode")
    if sync is not None and sync not in ("manual", "automatic"):
        return f'ha-sync-mode must be "manual" or "automatic", got {erlang_term(sync)}'
    batch = definition.get("ha-sync-batch-size")
    if batch is not None and not (_is_int(batch) and batch > 0):
        return (
            f"ha-sync-batch-size takes an integer greater than 0, {erlang_term(batch)} given"
        )
    for key in ("ha-promote-on-shutdown", "ha-promote-on-failure"):
        value = definition.get(key)
        if value is not None and value not in ("always", "when-synced"):
            return f'{key} must be "always" or "when-synced", got {erlang_term(value)}'
    return None


def _check_definition(definition: Any, operator: bool) -> dict[str, Any]:
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError:
            raise PolicyError("JSON decoding error. Reason: badarg") from None
    if not isinstance(definition, Mapping):
        raise PolicyError(f"definition must be a dictionary: {erlang_term(definition)}")
    if not definition:
        raise PolicyError("no policy provided")
    terms = dict(sorted((str(k), v) for k, v in definition.items()))
    allowed = set(OPERATOR_KEYS) if operator else set(_CORE) | set(_HA_KEYS) | {
        "queue-master-locator"
    }
    for key, value in terms.items():
        check = _CORE.get(key)
        if check is not None and key in allowed:
            error = check(value)
            if error is not None:
                raise PolicyError(error)
    if not operator:
        if any(k in terms for k in _HA_KEYS):
            error = _check_ha(terms)
            if error is not None:
                raise PolicyError(error)
        locator = terms.get("queue-master-locator")
        if "queue-master-locator" in terms and locator not in _LOCATOR:
            raise PolicyError(f"{erlang_term(locator)} invalid queue-master-locator value")
    unknown = [(k, v) for k, v in terms.items() if k not in allowed]
    if unknown:
        listed = ",".join(f"{{{erlang_term(k)},{erlang_term(v)}}}" for k, v in unknown)
        raise PolicyError(f"[{listed}] are not recognised policy settings")
    return terms


def _regex_error(exc: re.error) -> str:
    message, position = pcre_error(exc)
    return f'pattern should be regular expression but is invalid: {{"{message}",{position}}}'


def parse_policy(
    vhost: str,
    name: str,
    pattern: Any,
    definition: Any,
    *,
    priority: Any = 0,
    apply_to: Any = "all",
    operator: bool = False,
) -> Policy:
    """A checked :class:`Policy` (``definition``: a JSON object or its text); PolicyError
    with RabbitMQ's reason if it is not valid."""
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        raise PolicyError(f"priority should be a number, actually was {erlang_term(priority)}")
    if not isinstance(pattern, str):
        raise PolicyError(f"pattern should be a binary but was {erlang_term(pattern)}")
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise PolicyError(_regex_error(exc)) from None
    if apply_to is None:
        apply_to = "all"
    if apply_to not in APPLY_TO:
        raise PolicyError(
            f"apply-to '{apply_to}' unrecognised; should be 'queues', 'exchanges' or 'all'"
        )
    terms = _check_definition(definition, operator)
    return Policy(vhost, name, pattern, apply_to, priority, terms, operator, regex)
