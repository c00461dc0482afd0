"""kiltmq: an AMQP 0-9-1 broker, asyncio client and CLI."""

__version__ = "0.1.0"
