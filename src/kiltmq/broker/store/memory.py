"""The memory store: no storage at all.

Nothing is written, nothing is recovered, and ``after_commit`` callbacks run at once
(``defers_confirms`` is False, so the broker does not even ask).
"""

from __future__ import annotations

from kiltmq.broker.store.interface import Store

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """No persistence: the broker's in-memory state is all there is."""

    defers_confirms = False
