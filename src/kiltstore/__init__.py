"""MacGrudder's kilt store: the reference application of kiltmq.

Silos (a web store, a sales CRM, phone orders taken in the shop, billing, a workshop,
shipping, e-mail) joined only by messages, with Enterprise Integration Patterns. The
messaging uses only kiltmq's public client API, so the store runs on kiltmq's
embedded broker or on RabbitMQ alike. See docs/kiltstore.md.

Run everything in one process: ``python -m kiltstore demo`` (or ``kiltmq demo``);
one service alone: ``python -m kiltstore SERVICE`` with ``AMQP_URL`` set.
"""
