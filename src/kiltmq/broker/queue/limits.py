"""Length limits of a queue: x-max-length, x-max-length-bytes and what happens at the
limit (x-overflow): drop the oldest ready messages (``drop-head``, dead-lettered with
reason ``maxlen``), or refuse new ones (``reject-publish``; ``reject-publish-dlx`` also
dead-letters the refused message)."""

from __future__ import annotations

from typing import Any

__all__ = ["Limits"]


class Limits:
    """The length limits of one queue (made only when it has one)."""

    __slots__ = ("max_length", "max_length_bytes", "overflow", "drop_head")

    def __init__(
        self, max_length: int | None, max_length_bytes: int | None, overflow: str
    ) -> None:
        self.max_length = max_length
        self.max_length_bytes = max_length_bytes
        self.overflow = overflow
        #: The oldest messages make room (else new ones are refused).
        self.drop_head = overflow == "drop-head"

    @classmethod
    def of(cls, arguments: dict[str, Any]) -> Limits | None:
        """The limits set by queue ``arguments`` (None: the queue has none)."""
        max_length = arguments.get("x-max-length")
        max_length_bytes = arguments.get("x-max-length-bytes")
        if max_length is None and max_length_bytes is None:
            return None
        return cls(max_length, max_length_bytes, arguments.get("x-overflow", "drop-head"))

    def full(self, count: int, size: int, incoming: int) -> bool:
        """Whether a queue with ``count`` ready messages of ``size`` bytes has no room for
        one more of ``incoming`` bytes."""
        if self.max_length is not None and count >= self.max_length:
            return True
        return self.max_length_bytes is not None and size + incoming > self.max_length_bytes

    def exceeded(self, count: int, size: int) -> bool:
        """Whether ``count`` ready messages of ``size`` bytes are over the limits."""
        if self.max_length is not None and count > self.max_length:
            return True
        return self.max_length_bytes is not None and size > self.max_length_bytes
