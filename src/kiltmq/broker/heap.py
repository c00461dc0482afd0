"""The broker process's heap after start-up: kept out of the cycle collector's way.

CPython's cycle collector walks every tracked object of a generation when it collects
it; a full collection walks the whole heap. Once a broker has started, its heap is
mostly what start-up left (modules, classes, functions, tables: tens of thousands of
objects) and none of it becomes garbage while the broker runs, yet each full collection
walked it again: a stall of tens of milliseconds under load, in the middle of
deliveries. :func:`freeze_start_up` collects once and then moves what survives into
the collector's permanent generation (:func:`gc.freeze`), so that later collections
walk only what was made since. Only the broker commands (``kiltmq broker`` and the
benchmark's broker process) call it: it acts on the whole process, not on one broker.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_start_up"]


def freeze_start_up() -> int:
    """Collect, then exempt every object alive now from later collections; the number
    of objects exempted."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
