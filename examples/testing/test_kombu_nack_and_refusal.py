# mypy: allow-untyped-calls
"""kombu (the transport of Celery) meeting a broker that nacks a publish and refuses a
declaration, as RabbitMQ does under a failing queue or a missing permission."""

import amqp.exceptions
import pytest
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

from kiltmq.testing import BrokerFixture


def test_a_nacked_publish_raises_and_the_retry_lands(
    amqp_broker: BrokerFixture, amqp_url: str
) -> None:
    amqp_broker.faults.nack_publishes(1)
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        queue = Queue("emails", Exchange("mail", "direct"), routing_key="emails")
        producer = Producer(conn.channel())
        queue(producer.channel).declare()
        with pytest.raises(amqp.exceptions.MessageNacked):
            producer.publish({"to": "a@b"}, exchange="mail", routing_key="emails")
        producer.publish({"to": "a@b"}, exchange="mail", routing_key="emails")
    amqp_broker.assert_published(exchange="mail", routing_key="emails", body={"to": "a@b"})
    assert amqp_broker.queue("emails").message_count == 1


def test_a_refused_declare(amqp_broker: BrokerFixture, amqp_url: str) -> None:
    amqp_broker.faults.refuse("queue.declare", 403, name="audit")
    with Connection(amqp_url) as conn:
        with pytest.raises(amqp.exceptions.AccessRefused) as refused:
            Queue("audit")(conn.channel()).declare()
        assert refused.value.reply_text.startswith("ACCESS_REFUSED - access to queue 'audit'")
