"""The pytest plugin as its users see it: small test files using the fixtures with pika,
aio-pika, kombu and kiltmq, run by pytester in a fresh pytest session each."""

from __future__ import annotations

import pytest

# pytester (pytest's own fixture for testing plugins) is enabled here rather than in a
# conftest.py: pytest refuses pytest_plugins in a conftest below the rootdir whenever
# that conftest is not among the first ones it loads (for example with ``pytest .``).
pytest_plugins = ["pytester"]

BASE_INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
ASYNC_INI = BASE_INI + "asyncio_mode = auto\n"


def run(pytester: pytest.Pytester, *args: str, ini: str = BASE_INI) -> pytest.RunResult:
    """Run pytest in-process in pytester's directory (hypothesis's plugin, which would be
    imported anew for every run, is left out)."""
    pytester.makeini(ini)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def test_pika_tests_get_a_shared_broker_and_a_vhost_each(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pika

        SEEN = []

        def connect(url):
            params = pika.URLParameters(url)
            params.socket_timeout = 5
            return pika.BlockingConnection(params)

        def test_first(amqp_broker, amqp_url):
            SEEN.append((amqp_broker.port, amqp_broker.vhost))
            assert amqp_url == amqp_broker.url
            conn = connect(amqp_url)
            ch = conn.channel()
            ch.queue_declare("same-name")
            ch.basic_publish("", "same-name", b"left behind")
            assert amqp_broker.wait_messages("same-name").bodies == [b"left behind"]
            conn.close()

        def test_second_does_not_see_the_first(amqp_broker, amqp_url):
            SEEN.append((amqp_broker.port, amqp_broker.vhost))
            conn = connect(amqp_url)
            ch = conn.channel()
            declared = ch.queue_declare("same-name")
            assert declared.method.message_count == 0
            conn.close()

        def test_one_broker_two_vhosts():
            (port1, vhost1), (port2, vhost2) = SEEN
            assert port1 == port2
            assert vhost1 != vhost2
        """
    )
    run(pytester).assert_outcomes(passed=3)


def test_aio_pika_async_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import aio_pika

        async def test_worker_acks(amqp_broker, amqp_url):
            connection = await asyncio.wait_for(aio_pika.connect_robust(amqp_url), 5)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue("jobs")

                async def work(message):
                    async with message.process():
                        pass

                await queue.consume(work)
                await channel.default_exchange.publish(
                    aio_pika.Message(b"job", headers={"n": 1}), routing_key="jobs"
                )
                info = await amqp_broker.wait_acked_async("jobs")
                assert info.acked == 1
                assert info.consumers[0].no_ack is False

        async def test_injected_message_is_consumed(amqp_broker, amqp_url):
            connection = await asyncio.wait_for(aio_pika.connect(amqp_url), 5)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue("inbox")
                amqp_broker.publish("", "inbox", b"hello", {"content_type": "text/plain"})
                message = await queue.get(timeout=5)
                assert message.body == b"hello"
                assert message.content_type == "text/plain"
                await message.ack()
                await amqp_broker.wait_acked_async("inbox")
        """
    )
    run(pytester, ini=ASYNC_INI).assert_outcomes(passed=2)


def test_kombu_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from kombu import Connection, Exchange, Queue

        def test_simple_queue(amqp_broker, amqp_url):
            with Connection(amqp_url, connect_timeout=5) as conn:
                queue = conn.SimpleQueue("tasks")
                queue.put({"task": "sew"})
                info = amqp_broker.wait_messages("tasks")
                assert info.messages[0].json() == {"task": "sew"}
                assert info.messages[0].properties.content_type == "application/json"
                message = queue.get(timeout=5)
                assert message.payload == {"task": "sew"}
                message.ack()
                amqp_broker.wait_acked("tasks")
                queue.close()

        def test_producer_and_server_side_close(amqp_broker, amqp_url):
            exchange = Exchange("orders", type="direct")
            queue = Queue("kilts", exchange, routing_key="kilt")
            with Connection(amqp_url, connect_timeout=5) as conn:
                producer = conn.Producer()
                producer.publish(b"order", exchange=exchange, routing_key="kilt",
                                 declare=[queue])
                assert amqp_broker.wait_messages("kilts").bodies == [b"order"]
                assert amqp_broker.exchange("orders").bindings[0].destination == "kilts"
                (closed,) = amqp_broker.close_connections()
                assert closed.product == "py-amqp"
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_kiltmq_client_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import kiltmq
        import kiltmq.blocking

        async def test_async_client_recovers(amqp_broker, amqp_url):
            async with kiltmq.connect(amqp_url, name="svc", recovery_initial_delay=0.05) as conn:
                ch = await conn.channel()
                await ch.queue_declare("work")
                async with ch.consume("work") as consumer:
                    await amqp_broker.wait_consumers_async("work")
                    amqp_broker.close_connections("svc")
                    await amqp_broker.wait_connections_async(1, "svc")
                    await amqp_broker.wait_consumers_async("work")
                    amqp_broker.publish("", "work", b"after recovery")
                    message = await asyncio.wait_for(consumer.__anext__(), 5)
                    await message.ack()
                    assert message.body == b"after recovery"
                    await amqp_broker.wait_acked_async("work")

        def test_blocking_client(amqp_broker, amqp_url):
            with kiltmq.blocking.connect(amqp_url) as conn:
                ch = conn.channel()
                ch.queue_declare("hello")
                ch.basic_publish(b"Hello World!", routing_key="hello")
                for message in ch.consume("hello", inactivity_timeout=5):
                    message.ack()
                    break
            assert amqp_broker.wait_acked("hello").acked == 1
        """
    )
    run(pytester, ini=ASYNC_INI).assert_outcomes(passed=2)


def test_function_scope_from_the_command_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        PORTS = []

        def test_one(amqp_broker):
            assert amqp_broker.vhost == "/"
            PORTS.append(amqp_broker.port)

        def test_two(amqp_broker, amqp_url):
            assert amqp_url.endswith("/")
            PORTS.append(amqp_broker.port)
            assert PORTS[0] != PORTS[1]
        """
    )
    run(pytester, "--kiltmq-broker-scope=function").assert_outcomes(passed=2)


def test_function_scope_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_own_broker(amqp_broker):
            assert amqp_broker.vhost == "/"
        """
    )
    run(pytester, ini=BASE_INI + "kiltmq_broker_scope = function\n").assert_outcomes(passed=1)


def test_marker_options_per_test_broker_and_overridden_options(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def amqp_broker_options():
            return {"heartbeat": 30}
        """
    )
    pytester.makepyfile(
        """
        import pika
        import pytest

        @pytest.mark.kiltmq_broker(users={"app": "s3cret"}, loopback_users=[])
        def test_marker_gives_an_own_broker(amqp_broker, amqp_url):
            assert amqp_url.startswith("amqp://app:s3cret@127.0.0.1:")
            assert amqp_broker.vhost == "/"
            assert amqp_broker.broker.heartbeat == 30
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            assert [c.user for c in amqp_broker.connections()] == ["app"]
            conn.close()

        def test_options_reach_the_shared_broker(amqp_broker):
            assert amqp_broker.broker.heartbeat == 30

        def test_per_test_broker(amqp_broker_per_test, amqp_broker):
            assert amqp_broker_per_test.port != amqp_broker.port
            assert amqp_broker_per_test.vhost == "/"

        @pytest.mark.kiltmq_broker(scope="session", heartbeat=1)
        def test_bad_marker(amqp_broker):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*broker options need scope='function'*"])


def test_session_fixture_and_vhost_cleanup(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pika
        import pytest

        @pytest.fixture(scope="session")
        def setup_connection(amqp_broker_session):
            conn = pika.BlockingConnection(pika.URLParameters(amqp_broker_session.url))
            conn.channel().queue_declare("session-queue")
            yield conn
            conn.close()
        """
    )
    pytester.makepyfile(
        """
        import pika
        import pika.exceptions
        import pytest

        LEFT_OPEN = []

        def test_forgets_to_close(amqp_broker, amqp_broker_session, setup_connection):
            conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
            conn.channel().queue_declare("q")
            LEFT_OPEN.append((conn, amqp_broker.vhost))
            assert amqp_broker_session.vhost == "/"
            assert amqp_broker_session.has_queue("session-queue")
            assert not amqp_broker.has_queue("session-queue")

        def test_vhost_was_deleted(amqp_broker_session, setup_connection):
            conn, vhost = LEFT_OPEN[0]
            assert vhost not in amqp_broker_session.broker.vhosts
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as caught:
                conn.process_data_events(5)
            assert caught.value.reply_code == 320
            assert [c.vhost for c in amqp_broker_session.connections(vhost=None)] == ["/"]
        """
    )
    run(pytester).assert_outcomes(passed=2)


def test_a_timeout_fails_the_test_with_the_queue_state(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_nobody_consumes(amqp_broker):
            amqp_broker.wait_acked("never-declared", timeout=0.1)
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TimeoutError: no queue 'never-declared' in vhost *"])


def test_the_clock_marker_freezes_the_shared_brokers_clock_for_one_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pika
        import pytest

        @pytest.mark.kiltmq_clock("frozen")
        def test_frozen(amqp_broker, amqp_broker_session, amqp_url):
            assert amqp_broker.broker is amqp_broker_session.broker  # the shared one
            assert amqp_broker.clock.frozen
            conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
            channel = conn.channel()
            channel.queue_declare("brief", arguments={"x-message-ttl": 1})
            channel.queue_declare("marker")
            channel.basic_publish("", "brief", b"kept")
            channel.basic_publish("", "marker", b"after")
            amqp_broker.wait_messages("marker")
            conn.process_data_events(0.05)  # real time passes; the broker's does not
            assert amqp_broker.queue("brief").bodies == [b"kept"]
            amqp_broker.clock.advance(0.001)
            assert amqp_broker.queue("brief").bodies == []
            conn.close()

        def test_flows_again_after(amqp_broker):
            assert not amqp_broker.clock.frozen
            before = amqp_broker.clock.time()
            assert amqp_broker.clock.time() > before

        @pytest.mark.kiltmq_clock("frozen")
        @pytest.mark.kiltmq_broker(scope="function")
        def test_an_own_broker_too(amqp_broker, amqp_broker_session):
            assert amqp_broker.broker is not amqp_broker_session.broker
            assert amqp_broker.clock.frozen

        @pytest.mark.kiltmq_clock("running")
        @pytest.mark.kiltmq_broker(clock="frozen")
        def test_running_overrides_a_frozen_start(amqp_broker):
            assert not amqp_broker.clock.frozen

        @pytest.mark.kiltmq_clock("stopped")
        def test_a_wrong_state(amqp_broker):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*kiltmq_clock takes one of ('frozen', 'running')*"])
