"""A synchronous facade over the asyncio client, for scripts and threaded programs.

::

    import kiltmq.blocking

    with kiltmq.blocking.connect("amqp://guest:guest@localhost/") as conn:
        ch = conn.channel()
        ch.queue_declare("hello")
        ch.basic_publish(b"hi", routing_key="hello")
        for message in ch.consume("hello"):
            print(message.body)
            message.ack()
            break

Each :class:`BlockingConnection` runs the asyncio client (the very same
:class:`~kiltmq.client.connection.Connection` and channels) on an event loop in a
background thread (uvloop's when it is installed, unless ``KILTMQ_UVLOOP=0``); every
method here hands a coroutine to that loop and waits for its result. So heartbeats keep
flowing however long the application takes between calls, and the objects are
thread-safe: several threads may publish, consume and ack on one connection or even one
channel at once (calls on a channel run one at a time, in the order the loop receives
them). Messages are the async client's :class:`~kiltmq.client.message.Message`;
``message.ack()`` works from any thread.

Method names, arguments, results and errors are those of the async client (see
:mod:`kiltmq.client.channel`), which bounds its own waits (a call's ``timeout``, by
default the connection's ``rpc_timeout``; ``blocked_timeout`` for publishes while the
broker blocks the connection). The facade waits for each call a few seconds longer than
that, so a call that does not return is reported even if the event loop thread is stuck.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue as queue_module
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from kiltmq import event_loop
from kiltmq.client.channel import Channel, QueueDeclareOk
from kiltmq.client.connect import connect as async_connect
from kiltmq.client.connection import Connection
from kiltmq.client.consumer import Consumer, ConsumerState, OnCancel
from kiltmq.client.errors import ChannelClosed, ConnectionClosed
from kiltmq.client.message import Message
from kiltmq.client.url import ConnectionParameters
from kiltmq.protocol.codec import FieldTable
from kiltmq.protocol.spec import BasicProperties

__all__ = ["BlockingChannel", "BlockingConnection", "BlockingConsumer", "connect"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread (uvloop's when it is installed,
    unless ``KILTMQ_UVLOOP=0``: :mod:`kiltmq.event_loop`)."""

    def __init__(self, name: str) -> None:
        self.loop = event_loop.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True)
                    )
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if threading.get_ident() == self.thread.ident:
            coro.close()
            raise RuntimeError("blocking kiltmq calls cannot be made from its own event loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:  # the builtin TimeoutError
            if future.done():
                raise  # the call's own (BlockedTimeout, a method's timeout)
            future.cancel()
            raise TimeoutError(f"no result within {timeout} s") from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.get_ident() != self.thread.ident:
            self.thread.join(10)


def connect(
    url: str | ConnectionParameters | Sequence[str | ConnectionParameters] | None = None,
    **options: Any,
) -> BlockingConnection:
    """Open a connection; same arguments as :func:`kiltmq.connect`. Usable as a context
    manager (``with kiltmq.blocking.connect(url) as conn:``)."""
    opener = async_connect(url, **options)
    runner = _LoopThread("kiltmq-blocking")

    async def open_connection() -> Connection:
        return await opener

    try:
        timeout = sum(address.connection_timeout for address in opener.addresses) + 5
        connection = runner.run(open_connection(), timeout)
    except BaseException:
        runner.stop()
        raise
    return BlockingConnection(connection, runner)


class _Opened(Protocol):
    @property
    def is_open(self) -> bool: ...

    @property
    def is_closed(self) -> bool: ...


class _Facade:
    """is_open / is_closed of the wrapped async object."""

    _wrapped: _Opened

    @property
    def is_open(self) -> bool:
        return self._wrapped.is_open

    @property
    def is_closed(self) -> bool:
        return self._wrapped.is_closed


class BlockingConnection(_Facade):
    """A connection usable from any thread; see the module docstring."""

    def __init__(self, connection: Connection, runner: _LoopThread) -> None:
        self.connection = self._wrapped = connection
        self._runner = runner
        self._margin = 5.0

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop; ``timeout`` is the call's own bound (default
        ``rpc_timeout``): wait a margin longer for its result or its error."""
        if timeout is None:
            timeout = self.connection.rpc_timeout
        return self._runner.run(coro, timeout + self._margin)

    @property
    def blocked(self) -> bool:
        return self.connection.blocked

    @property
    def server_properties(self) -> FieldTable:
        return self.connection.server_properties

    def channel(self, *, timeout: float | None = None) -> BlockingChannel:
        """Open a channel."""
        return BlockingChannel(
            self, self._call(self.connection.channel(timeout=timeout), timeout)
        )

    def close(self, *, timeout: float | None = None) -> None:
        """Close the connection and stop its event loop thread. Idempotent."""
        if self._runner.loop.is_closed():
            return
        try:
            if not self.connection.is_closed:
                self._call(self.connection.close(timeout=timeout), timeout)
        finally:
            self._runner.stop()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BlockingConnection {self.connection.parameters.display}>"


class BlockingChannel(_Facade):
    """A channel usable from any thread: the async :class:`Channel`'s methods, blocking."""

    def __init__(self, connection: BlockingConnection, channel: Channel) -> None:
        self.connection = connection
        self.channel = self._wrapped = channel
        self._call = connection._call

    def _call_kw(self, coro: Coroutine[Any, Any, T], kwargs: dict[str, Any]) -> T:
        return self._call(coro, kwargs.get("timeout"))

    @property
    def number(self) -> int:
        return self.channel.number

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BlockingChannel {self.channel.number} {self.channel.state.value}>"

    def close(self) -> None:
        if not self.connection.connection.is_closed and not self.channel.is_closed:
            self._call(self.channel.close())

    def channel_flow(self, active: bool, *, timeout: float | None = None) -> bool:
        return self._call(self.channel.channel_flow(active, timeout=timeout), timeout)

    def exchange_declare(self, exchange: str, type: str = "direct", **kwargs: Any) -> None:
        self._call_kw(self.channel.exchange_declare(exchange, type, **kwargs), kwargs)

    def exchange_delete(self, exchange: str, **kwargs: Any) -> None:
        self._call_kw(self.channel.exchange_delete(exchange, **kwargs), kwargs)

    def exchange_bind(
        self, destination: str, source: str, routing_key: str = "", **kwargs: Any
    ) -> None:
        call = self.channel.exchange_bind(destination, source, routing_key, **kwargs)
        self._call_kw(call, kwargs)

    def exchange_unbind(
        self, destination: str, source: str, routing_key: str = "", **kwargs: Any
    ) -> None:
        call = self.channel.exchange_unbind(destination, source, routing_key, **kwargs)
        self._call_kw(call, kwargs)

    def queue_declare(self, queue: str = "", **kwargs: Any) -> QueueDeclareOk:
        return self._call_kw(self.channel.queue_declare(queue, **kwargs), kwargs)

    def queue_bind(self, queue: str, exchange: str, routing_key: str = "", **kwargs: Any) -> None:
        self._call_kw(self.channel.queue_bind(queue, exchange, routing_key, **kwargs), kwargs)

    def queue_unbind(
        self, queue: str, exchange: str, routing_key: str = "", **kwargs: Any
    ) -> None:
        self._call_kw(self.channel.queue_unbind(queue, exchange, routing_key, **kwargs), kwargs)

    def queue_purge(self, queue: str, **kwargs: Any) -> int:
        return self._call_kw(self.channel.queue_purge(queue, **kwargs), kwargs)

    def queue_delete(self, queue: str, **kwargs: Any) -> int:
        return self._call_kw(self.channel.queue_delete(queue, **kwargs), kwargs)

    def basic_qos(self, prefetch_count: int = 0, prefetch_size: int = 0, **kwargs: Any) -> None:
        self._call_kw(self.channel.basic_qos(prefetch_count, prefetch_size, **kwargs), kwargs)

    def basic_get(self, queue: str, **kwargs: Any) -> Message | None:
        return self._call_kw(self.channel.basic_get(queue, **kwargs), kwargs)

    def basic_publish(
        self,
        body: bytes | str,
        exchange: str = "",
        routing_key: str = "",
        properties: BasicProperties | None = None,
        **kwargs: Any,
    ) -> None:
        """basic.publish; in confirm mode returns once confirmed (or raises)."""
        conn = self.connection.connection
        blocked = conn.blocked_timeout
        # the async publish bounds itself: waits for recovery and flow (rpc_timeout each),
        # for the broker to unblock (blocked_timeout: None is no limit), for the confirm
        timeout = kwargs.get("timeout") or conn.rpc_timeout
        coro = self.channel.basic_publish(body, exchange, routing_key, properties, **kwargs)
        if blocked is None:
            self.connection._runner.run(coro, None)
        else:
            self._call(coro, 2 * conn.rpc_timeout + blocked + timeout)

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self._call(self.channel.basic_ack(delivery_tag, multiple))

    def basic_nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self._call(self.channel.basic_nack(delivery_tag, multiple, requeue))

    def basic_reject(self, delivery_tag: int, requeue: bool = True) -> None:
        self._call(self.channel.basic_reject(delivery_tag, requeue))

    def basic_recover(self, requeue: bool = True, *, timeout: float | None = None) -> None:
        self._call(self.channel.basic_recover(requeue, timeout=timeout), timeout)

    def basic_cancel(self, consumer_tag: str, *, timeout: float | None = None) -> None:
        self._call(self.channel.basic_cancel(consumer_tag, timeout=timeout), timeout)

    def basic_consume(
        self, queue: str, callback: Callable[[Message], Any], **kwargs: Any
    ) -> str:
        """basic.consume with a plain callback, called in a worker thread per message
        (one at a time, in order)."""
        return self._call_kw(self.channel.basic_consume(queue, callback, **kwargs), kwargs)

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        no_local: bool = False,
        consumer_tag: str = "",
        arguments: FieldTable | None = None,
        on_cancel: OnCancel = "stop",
        inactivity_timeout: float | None = None,
    ) -> BlockingConsumer:
        """A consumer to iterate over: ``for message in ch.consume(queue): ...``.

        Iteration ends when the consumer is cancelled (:meth:`BlockingConsumer.cancel`,
        possibly from another thread, or by the broker), when the channel closes, or
        after ``inactivity_timeout`` seconds without a message."""
        async def start() -> BlockingConsumer:
            consumer = self.channel.consume(
                queue,
                no_ack=no_ack,
                exclusive=exclusive,
                no_local=no_local,
                consumer_tag=consumer_tag,
                arguments=arguments,
                on_cancel=on_cancel,
            )
            blocking = BlockingConsumer(self, consumer)
            consumer._sink = blocking._put
            await consumer.start()
            return blocking

        return self._call(start()).with_timeout(inactivity_timeout)

    def confirm_select(self, *, timeout: float | None = None) -> None:
        self._call(self.channel.confirm_select(timeout=timeout), timeout)

    def wait_for_confirms(self, timeout: float | None = None) -> None:
        self._call(self.channel.wait_for_confirms(timeout), timeout)

    def tx_select(self, *, timeout: float | None = None) -> None:
        self._call(self.channel.tx_select(timeout=timeout), timeout)

    def tx_commit(self, *, timeout: float | None = None) -> None:
        self._call(self.channel.tx_commit(timeout=timeout), timeout)

    def tx_rollback(self, *, timeout: float | None = None) -> None:
        self._call(self.channel.tx_rollback(timeout=timeout), timeout)


_END = object()


class BlockingConsumer:
    """Iterate over a subscription's messages from a thread; see
    :meth:`BlockingChannel.consume`."""

    def __init__(self, channel: BlockingChannel, consumer: Consumer) -> None:
        self.channel = channel
        self.consumer = consumer
        self._queue: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        self._timeout: float | None = None

    def with_timeout(self, timeout: float | None) -> BlockingConsumer:
        self._timeout = timeout
        return self

    @property
    def consumer_tag(self) -> str:
        return self.consumer.consumer_tag

    def _put(self, message: Message | None) -> None:
        self._queue.put(_END if message is None else message)

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        while True:
            try:
                item = self._queue.get(timeout=self._timeout)
            except queue_module.Empty:
                raise StopIteration from None
            if item is _END:
                self._queue.put(_END)  # later calls end too
                error = self.consumer.error
                if error is not None:
                    raise error
                raise StopIteration
            assert isinstance(item, Message)
            channel = item._channel
            if not item.no_ack and channel is not None and item._epoch != channel._epoch:
                continue  # delivered before a connection recovery: it comes again
            return item

    def cancel(self) -> None:
        """basic.cancel; iteration ends after messages already received."""
        if self.consumer.state in (ConsumerState.ACTIVE, ConsumerState.STARTING):
            with contextlib.suppress(ChannelClosed, ConnectionClosed):
                self.channel._call(self.consumer.cancel())

    def __enter__(self) -> BlockingConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.channel.is_open:
            self.cancel()
