"""A virtual host's description, tags and default queue type (RabbitMQ's vhost
metadata), kept in the store as the vhost's definition of kind ``metadata``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["VhostMetadata"]


@dataclass(frozen=True)
class VhostMetadata:
    #: The store's kind of definition for a vhost's metadata (one, named "metadata").
    KIND: ClassVar[str] = "metadata"

    description: str = ""
    tags: tuple[str, ...] = ()
    #: None: not set (RabbitMQ shows "undefined").
    default_queue_type: str | None = None

    @classmethod
    def of(
        cls, description: str = "", tags: Iterable[str] = (), default_queue_type: str | None = None
    ) -> VhostMetadata:
        return cls(description, tuple(tags), default_queue_type)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> VhostMetadata:
        return cls.of(
            str(record.get("description", "")),
            [str(t) for t in record.get("tags", [])],
            record.get("default_queue_type"),
        )

    def record(self) -> dict[str, Any]:
        """As stored."""
        return {
            "name": self.KIND,
            "description": self.description,
            "tags": list(self.tags),
            "default_queue_type": self.default_queue_type,
        }
