"""Celery on RabbitMQ: a task that fails calls ``self.retry(countdown=600)`` and is run
again ten minutes later, with no ten-minute sleep in the test.

Where a countdown waits decides what can move it. On classic queues Celery's worker takes
the retried message at once and keeps it unacknowledged in its own timer until the ETA
(see test_celery_eta.py). On quorum queues Celery (5.5 and later) uses RabbitMQ's native
delayed delivery: the retry is published to the exchange ``celery_delayed_27`` with the
countdown's bits in its routing key, and waits in the queues ``celery_delayed_0`` to
``celery_delayed_27`` (a message TTL of 2**n seconds each, dead-lettered to the next
level) until it reaches the task's queue. The broker holds it, so the broker's clock
moves it: ``amqp_broker.clock.advance(600)``.

The task message still carries its ETA (a wall-clock time) and the worker still compares
it with its own clock, so the app computes ETAs with the broker's wall clock (``now``)
and the worker reads them against it (``worker_follows_broker_clock``): Celery has no
clock to hand its worker, and ``to_timestamp`` in ``celery.worker.strategy`` is the one
name it reads an ETA through. Celery's worker runs in a thread of the test."""

# mypy: allow-untyped-calls, allow-untyped-decorators, allow-subclassing-any
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import celery.worker.strategy
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu.entity import Exchange, Queue

from kiltmq.testing import BrokerFixture
from kiltmq.testing.clock_control import ClockControl

attempts: list[float] = []  # the broker's wall-clock time of each run of the task
failures = [2]  # how many runs fail before the payment gateway answers


class Shop(Celery):
    """The application, its ``now`` (which ETAs are computed from) the broker's."""

    broker_clock: ClockControl

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.broker_clock.wall(), UTC)


def charge(task: Any, order: int) -> str:
    attempts.append(task.app.broker_clock.wall())
    if len(attempts) <= failures[0]:  # the payment gateway is down
        raise task.retry(countdown=600)
    return f"order {order} charged"


def make_app(url: str, clock: ClockControl) -> Shop:
    app = Shop("shop", broker=url.replace("amqp://", "pyamqp://"))
    app.broker_clock = clock
    app.conf.update(
        broker_connection_retry_on_startup=True,
        broker_heartbeat=0,  # the worker's loop then wakes often enough to stop at once
        broker_transport_options={"confirm_publish": True},
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,  # Celery 6's default
        result_backend="rpc://",
        # a quorum queue behind a topic exchange: Celery's native delayed delivery
        task_queues=[
            Queue("shop", Exchange("shop", type="topic"), routing_key="shop",
                  queue_arguments={"x-queue-type": "quorum"}),
        ],
        task_default_queue="shop",
        task_default_exchange="shop",
        task_default_exchange_type="topic",
        task_default_routing_key="shop",
    )

    app.task(bind=True, name="payments.charge", max_retries=3)(charge)
    return app


@pytest.fixture
def worker_follows_broker_clock(
    amqp_broker: BrokerFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker reads each task's ETA against the broker's wall clock."""
    real: Callable[..., float] = celery.worker.strategy.to_timestamp
    clock = amqp_broker.clock

    def to_timestamp(eta: datetime, *args: Any) -> float:
        return real(eta, *args) - (clock.wall() - time.time())

    monkeypatch.setattr(celery.worker.strategy, "to_timestamp", to_timestamp)


@pytest.fixture
def worker(amqp_broker: BrokerFixture, amqp_url: str, worker_follows_broker_clock: None,
           request: pytest.FixtureRequest) -> Iterator[Shop]:
    attempts.clear()
    failures[0] = getattr(request, "param", 2)
    amqp_broker.clock.freeze()  # only advance() moves the broker's time: exact ETAs
    app = make_app(amqp_url, amqp_broker.clock)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        amqp_broker.wait_for_consumers("shop")
        yield app


def wait_attempts(n: int) -> None:
    deadline = time.monotonic() + 5
    while len(attempts) < n:
        assert time.monotonic() < deadline, f"{len(attempts)} runs of the task, not {n}"
        time.sleep(0.01)


def test_a_failing_charge_is_retried_every_ten_minutes_until_it_succeeds(
    amqp_broker: BrokerFixture, worker: Shop
) -> None:
    result = worker.send_task("payments.charge", args=[7])
    wait_attempts(1)
    # the retry waits in the broker's delay queues, not in the worker
    retry = amqp_broker.assert_published(exchange="celery_delayed_27", headers={"retries": 1})
    assert retry[0].routing_key.endswith(".1.0.0.1.0.1.1.0.0.0.shop")  # 600 in binary
    assert amqp_broker.wait_acked("shop", count=1).unacked_count == 0  # the worker holds none

    amqp_broker.clock.advance(599)
    assert len(attempts) == 1  # not due yet: still in a delay queue
    assert amqp_broker.queue("celery_delayed_3").message_count == 1  # the last 8 s
    amqp_broker.clock.advance(1)
    wait_attempts(2)
    amqp_broker.assert_published(exchange="celery_delayed_27", headers={"retries": 2})

    amqp_broker.clock.advance(600)
    assert result.get(timeout=5) == "order 7 charged"
    assert [round(t - attempts[0]) for t in attempts] == [0, 600, 1200]  # the broker's time


@pytest.mark.parametrize("worker", [1], indirect=True)
def test_a_retry_waiting_in_the_broker_survives_the_worker_losing_its_connection(
    amqp_broker: BrokerFixture, worker: Shop
) -> None:
    result = worker.send_task("payments.charge", args=[8])
    wait_attempts(1)
    amqp_broker.assert_published(exchange="celery_delayed_27", headers={"retries": 1})
    amqp_broker.wait_acked("shop", count=1)  # the first run's message, settled
    before = amqp_broker.queue("shop").consumers[0].connection.peer
    amqp_broker.faults.drop_connection(None)  # a network partition: every TCP reset
    deadline = time.monotonic() + 15
    while not any(c.connection.peer != before for c in amqp_broker.queue("shop").consumers):
        assert time.monotonic() < deadline, "the worker did not consume again"
        time.sleep(0.05)
    amqp_broker.clock.advance(600)
    assert result.get(timeout=10) == "order 8 charged"
    assert len(attempts) == 2
