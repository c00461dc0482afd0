"""A dynamic shovel's definition, RabbitMQ's ``shovel`` runtime parameter, in the form
kiltmq runs: a move of a fixed number of messages (``src-delete-after``:
``queue-length`` or a count) from a queue to a queue, both reached with ``amqp://`` URIs
without a host (this broker). Other forms (remote brokers, exchanges, AMQP 1.0, shovels
that never end) are refused with a reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["ShovelInvalid", "ShovelParameter"]

ACK_MODES = ("on-confirm", "on-publish", "no-ack")
#: Keys taken and ignored: they change nothing for a move within the broker.
IGNORED = ("src-prefetch-count", "reconnect-delay")
#: Keys taken only with their default (false): they would change the moved messages.
FALSE_ONLY = ("dest-add-forward-headers", "dest-add-timestamp-header")
KNOWN = (
    "src-protocol", "dest-protocol", "src-uri", "dest-uri", "src-queue", "dest-queue",
    "src-delete-after", "ack-mode", *IGNORED, *FALSE_ONLY,
)


class ShovelInvalid(ValueError):
    """A shovel definition kiltmq cannot run; the message says why."""


def _local_vhost(value: Mapping[str, Any], key: str) -> str:
    """The vhost of a ``{src,dest}-uri``: this broker's only (``amqp:///vhost``)."""
    uri = value.get(key)
    if isinstance(uri, list) and len(uri) == 1:
        uri = uri[0]
    if not isinstance(uri, str):
        raise ShovelInvalid(f"{key} should be an amqp:// URI")
    parts = urlsplit(uri)
    if parts.scheme != "amqp" or parts.netloc or parts.query:
        raise ShovelInvalid(
            f"{key} {uri!r} is not supported: kiltmq shovels move messages within this"
            " broker (amqp:///vhost, without a host)"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return unquote(path) if path else "/"


def _count(value: Mapping[str, Any]) -> int | None:
    after = value.get("src-delete-after", "never")
    if after == "queue-length":
        return None
    if isinstance(after, int) and not isinstance(after, bool) and after > 0:
        return after
    raise ShovelInvalid(
        f"src-delete-after {after!r} is not supported: kiltmq shovels move"
        " \"queue-length\" or a number of messages, then stop"
    )


@dataclass(frozen=True, slots=True)
class ShovelParameter:
    """Where a shovel moves messages from and to, and how many (None: the source's
    length when it starts)."""

    src_vhost: str
    src_queue: str
    dest_vhost: str
    dest_queue: str
    count: int | None

    @classmethod
    def parse(cls, value: Any) -> ShovelParameter:
        """The shovel ``value`` (the parameter's JSON object) describes; ShovelInvalid
        if kiltmq cannot run it."""
        if not isinstance(value, Mapping):
            raise ShovelInvalid("a shovel should be a JSON object")
        for key in value:
            if key not in KNOWN:
                raise ShovelInvalid(f"{key} is not supported by kiltmq shovels")
        for key in ("src-protocol", "dest-protocol"):
            if value.get(key, "amqp091") != "amqp091":
                raise ShovelInvalid(f"{key} {value[key]!r} is not supported: only amqp091")
        for key in FALSE_ONLY:
            if value.get(key, False) is not False:
                raise ShovelInvalid(f"{key} is not supported by kiltmq shovels")
        if value.get("ack-mode", "on-confirm") not in ACK_MODES:
            raise ShovelInvalid(
                f"ack-mode {value['ack-mode']!r} should be one of {', '.join(ACK_MODES)}"
            )
        for end in ("src", "dest"):
            if not isinstance(value.get(f"{end}-queue"), str):
                raise ShovelInvalid(
                    f"{end}-queue is required: kiltmq shovels move from a queue to a queue"
                )
        count = _count(value)
        return cls(
            _local_vhost(value, "src-uri"), value["src-queue"],
            _local_vhost(value, "dest-uri"), value["dest-queue"], count,
        )
