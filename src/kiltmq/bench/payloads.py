"""The messages the broker scenarios publish: a body and its properties, by name.

``100b``, ``4k`` and ``64k`` are bodies of zeros with no property but the delivery mode.
``celery`` is a task message as Celery 5 publishes it through kombu (task protocol 2):
a JSON body ``[args, kwargs, embed]``, content type and encoding, correlation id and
reply-to, delivery mode 2 and the task's headers table.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.spec import BasicProperties

__all__ = ["PAYLOADS", "Payload", "celery_headers"]

_TASK_ID = "5f1c9a3e-7d2b-4e8f-9a61-0b3c7d4e5f60"
_ROOT_ID = _TASK_ID
_REPLY_TO = "0e2d7b4c-3a1f-3c5e-8d9b-6f4a2c1e7b38"
_CELERY_BODY = b'[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'


def celery_headers() -> FieldTable:
    """The headers table of a Celery 5 task message (``tasks.add(2, 3)``)."""
    return {
        "lang": "py",
        "task": "tasks.add",
        "id": _TASK_ID,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": _ROOT_ID,
        "parent_id": None,
        "argsrepr": "(2, 3)",
        "kwargsrepr": "{}",
        "origin": "gen4242@worker-1",
        "ignore_result": False,
    }


@dataclass(frozen=True)
class Payload:
    """A message body and its properties."""

    name: str
    title: str
    body: bytes
    properties: BasicProperties

    def persistent(self) -> BasicProperties:
        """The same properties with delivery mode 2."""
        props = copy.copy(self.properties)
        props.delivery_mode = 2
        return props


PAYLOADS: dict[str, Payload] = {
    p.name: p
    for p in (
        Payload("100b", "100 B", bytes(100), BasicProperties(delivery_mode=1)),
        Payload("4k", "4 KiB", bytes(4096), BasicProperties(delivery_mode=1)),
        Payload("64k", "64 KiB", bytes(65536), BasicProperties(delivery_mode=1)),
        Payload(
            "celery",
            "Celery task",
            _CELERY_BODY,
            BasicProperties(
                content_type="application/json",
                content_encoding="utf-8",
                headers=celery_headers(),
                delivery_mode=2,
                correlation_id=_TASK_ID,
                reply_to=_REPLY_TO,
            ),
        ),
    )
}
