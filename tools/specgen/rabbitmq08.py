"""RabbitMQ's additions to the AMQP 0-8 spec, as its 0-8 method tables have them
(rabbitmq-codegen's ``amqp-rabbitmq-0.8.json``) and RabbitMQ 3.10 answers on the wire:
queue.unbind and unbind-ok (50, 51); basic.recover at 110 with recover-ok (111), the 0-8
spec's asynchronous basic.recover (100) becoming basic.recover-async, as in 0-9-1; and the
reply codes 312, 313, 406 and 505 of 0-9-1.

:func:`add_rabbitmq_extensions` leaves a spec that has them already as it is, so that the
0-8 XML written from the generated tables regenerates the same module."""

from __future__ import annotations

from specgen.model import Field, Method, Spec

REPLY_CODES = [
    ("no-route", 312, "soft-error"),
    ("no-consumers", 313, "soft-error"),
    ("precondition-failed", 406, "soft-error"),
    ("unexpected-frame", 505, "hard-error"),
]


def _method(
    cls: tuple[str, int], name: str, index: int, to_server: bool, responses: list[str]
) -> Method:
    return Method(
        cls_name=cls[0],
        cls_id=cls[1],
        name=name,
        id=index,
        synchronous=True,
        content=False,
        chassis=["server" if to_server else "client"],
        responses=responses,
    )


def _insert_after(methods: list[Method], dotted: str, new: list[Method]) -> None:
    at = next(i for i, m in enumerate(methods) if m.dotted == dotted) + 1
    methods[at:at] = new


def add_rabbitmq_extensions(spec: Spec) -> None:
    methods = spec.methods
    names = {m.dotted for m in methods}
    if "queue.unbind" not in names:
        unbind = _method(("queue", 50), "unbind", 50, True, ["unbind-ok"])
        unbind.fields = [
            Field("ticket", "short", False),
            Field("queue", "shortstr", False),
            Field("exchange", "shortstr", False),
            Field("routing-key", "shortstr", False),
            Field("arguments", "table", False),
        ]
        unbind_ok = _method(("queue", 50), "unbind-ok", 51, False, [])
        _insert_after(methods, "queue.delete-ok", [unbind, unbind_ok])
    if "basic.recover-async" not in names:
        old = next(m for m in methods if m.dotted == "basic.recover")
        old.name = "recover-async"
        recover = _method(("basic", 60), "recover", 110, True, ["recover-ok"])
        recover.fields = [Field("requeue", "bit", False)]
        recover_ok = _method(("basic", 60), "recover-ok", 111, False, [])
        _insert_after(methods, "basic.recover-async", [recover, recover_ok])
    constants = spec.constants
    known = {name for name, _, _ in constants}
    for name, value, error_class in REPLY_CODES:
        if name in known:
            continue
        at = max(
            i for i, (_, v, c) in enumerate(constants) if c is not None and v < value
        )
        constants.insert(at + 1, (name, value, error_class))
