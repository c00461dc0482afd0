"""A pika blocking consumer whose job takes longer than RabbitMQ's consumer timeout
(30 minutes by default): the broker closes its channel with 406 and the message goes
back to the queue, redelivered. The broker's clock makes the half hour pass at once."""

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from kiltmq.testing import BrokerFixture


def test_a_slow_job_hits_the_consumer_timeout(amqp_broker: BrokerFixture, amqp_url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    channel.queue_declare("reports")
    started: list[bytes] = []

    def on_report(
        ch: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        started.append(body)  # a long job: no ack yet
        amqp_broker.clock.advance(30 * 60 + 60)  # half an hour (and a check) later

    channel.basic_consume("reports", on_report)
    amqp_broker.publish("", "reports", b"yearly report")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        channel.start_consuming()
    assert started == [b"yearly report"]
    assert closed.value.reply_code == 406
    assert "delivery acknowledgement on channel 1 timed out" in closed.value.reply_text
    report = amqp_broker.wait_messages("reports").messages[0]
    assert report.redelivered
    conn.close()
