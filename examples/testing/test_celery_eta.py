"""Celery on RabbitMQ: a task due in an hour (ETA) meets RabbitMQ's consumer timeout,
as it does in production since RabbitMQ 3.8.15: the worker holds the message
unacknowledged until the ETA, the broker closes its channel after 30 minutes. Celery's
worker runs in a thread of the test; the broker's clock makes the half hour pass at
once. (Set ``consumer_timeout`` above your longest ETA on RabbitMQ, or keep ETAs short;
on quorum queues Celery waits in the broker instead: test_celery_retry.py.)"""

# mypy: allow-untyped-calls, allow-untyped-decorators
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from kiltmq.testing import BrokerFixture, QueueInfo

attempts: list[int] = []


def make_app(url: str) -> Celery:
    app = Celery("shop", broker=url.replace("amqp://", "pyamqp://"))
    app.conf.update(
        broker_connection_retry_on_startup=True, task_default_queue="celery",
        worker_hijack_root_logger=False, result_backend=None,
    )

    @app.task(bind=True, name="shop.charge", max_retries=3, default_retry_delay=0)
    def charge(self: Any, order: int) -> None:
        attempts.append(order)
        if len(attempts) < 3:
            raise self.retry()  # published again by the worker, as RabbitMQ sees it

    return app


def wait_unacked(amqp_broker: BrokerFixture, queue: str) -> QueueInfo:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        info = amqp_broker.queue(queue) if amqp_broker.has_queue(queue) else None
        if info is not None and info.unacked_count:
            return info
        time.sleep(0.01)
    raise AssertionError(f"nothing delivered from {queue!r} and unacknowledged")


@pytest.fixture
def worker(amqp_broker: BrokerFixture, amqp_url: str) -> Iterator[Celery]:
    attempts.clear()
    app = make_app(amqp_url)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        amqp_broker.wait_for_consumers("celery")
        yield app


def test_an_eta_task_held_past_the_consumer_timeout_is_redelivered(
    amqp_broker: BrokerFixture, worker: Celery
) -> None:
    worker.send_task("shop.charge", args=[7], countdown=3600)  # an hour from now
    held = wait_unacked(amqp_broker, "celery")  # the worker holds it until its ETA
    assert held.message_count == 0
    amqp_broker.clock.advance(30 * 60 + 60)  # RabbitMQ's consumer timeout: 30 minutes
    # the broker closed the worker's channel (406 PRECONDITION_FAILED, "delivery
    # acknowledgement on channel 1 timed out"), which Celery's worker takes as an
    # unrecoverable error; the task went back to the queue for the next worker
    info = amqp_broker.wait_messages("celery")
    assert info.messages[0].redelivered
    assert info.messages[0].headers["task"] == "shop.charge"
    assert attempts == []  # never run
