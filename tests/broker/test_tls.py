"""amqps listeners and SASL EXTERNAL, with certificates made by openssl for the test:
kiltmq's client, pika and aio-pika against kiltmq over TLS."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pika
import pika.credentials
import pika.exceptions
import pytest

import kiltmq
import kiltmq.blocking
from kiltmq import AuthenticationError, event_loop
from kiltmq.broker import Broker
from kiltmq.broker.tls import certificate_user_name

from .certs import CertificateAuthority, KeyPair
from .loops import LOOPS, running

APP_DN = "CN=app,O=kiltmq test,C=GB"
REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. "
    "For details see the broker logfile."
)


@dataclass(frozen=True)
class PKI:
    ca: CertificateAuthority
    server: KeyPair
    app: KeyPair  # CN=app,O=kiltmq test,C=GB
    stranger: KeyPair  # CN=nobody: no such user
    other_ca: CertificateAuthority
    forged: KeyPair  # CN=app, signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(directory / "ca")
    other = CertificateAuthority(directory / "other", "another CA")
    return PKI(
        ca,
        ca.issue("server", "/CN=localhost", server=True),
        ca.issue("app", "/C=GB/O=kiltmq test/CN=app"),
        ca.issue("stranger", "/CN=nobody"),
        other,
        other.issue("forged", "/C=GB/O=kiltmq test/CN=app"),
    )


def tls_broker(pki: PKI, **options: object) -> Broker:
    options.setdefault("users", {"guest": "guest", APP_DN: "unused", "app": "unused"})
    options.setdefault("tls_ca", pki.ca.cert)
    return Broker(
        port=0,
        tls_port=0,
        tls_cert=pki.server.cert,
        tls_key=pki.server.key,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(params=LOOPS)
def broker(pki: PKI, request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A broker with plain and TLS listeners, on asyncio's loop or uvloop's; client
    certificates are optional."""
    with running(tls_broker(pki, tls_verify="optional"), request.param) as started:
        yield started


def amqps(broker: Broker, pki: PKI, client: KeyPair | None = None, query: str = "") -> str:
    url = f"amqps://guest:guest@localhost:{broker.tls_port}/?cacertfile={pki.ca.cert}"
    if client is not None:
        url += f"&certfile={client.cert}&keyfile={client.key}"
    return url + query


def usernames(broker: Broker) -> list[str]:
    def names() -> list[str]:
        return sorted(c.session.username for c in broker.connections if c.session.opened)

    result: list[str] = broker.call_in_loop(names)
    return result


# -- kiltmq's client -------------------------------------------------------------------


async def test_plain_and_tls_listeners_together(broker: Broker, pki: PKI) -> None:
    assert broker.tls_port not in (None, 0, broker.port)
    assert broker.amqps_url == f"amqps://guest:guest@127.0.0.1:{broker.tls_port}/"
    async with kiltmq.connect(amqps(broker, pki)) as tls_conn, kiltmq.connect(broker.url) as plain:
        assert tls_conn._transport is not None and plain._transport is not None
        assert tls_conn._transport.get_extra_info("ssl_object") is not None
        assert plain._transport.get_extra_info("ssl_object") is None
        ch = await tls_conn.channel()
        queue = (await ch.queue_declare("", exclusive=False, auto_delete=True)).queue
        await ch.basic_publish(b"over TLS", routing_key=queue)
        plain_ch = await plain.channel()
        message = await plain_ch.basic_get(queue, no_ack=True)
        assert message is not None and message.body == b"over TLS"


async def test_external_logs_in_as_the_certificates_distinguished_name(
    broker: Broker, pki: PKI
) -> None:
    url = amqps(broker, pki, pki.app, "&auth_mechanism=external")
    async with kiltmq.connect(url) as conn:
        ch = await conn.channel()
        assert (await ch.queue_declare("", exclusive=True)).queue
        assert usernames(broker) == [APP_DN]


async def test_external_from_the_common_name(pki: PKI) -> None:
    with tls_broker(pki, tls_login_from="common_name") as broker:
        url = amqps(broker, pki, pki.app, "&auth_mechanism=external")
        async with kiltmq.connect(url) as conn:
            assert (await conn.channel()).is_open
            assert usernames(broker) == ["app"]


async def test_external_refused_for_an_unknown_user(broker: Broker, pki: PKI) -> None:
    url = amqps(broker, pki, pki.stranger, "&auth_mechanism=external")
    with pytest.raises(AuthenticationError) as caught:
        await kiltmq.connect(url)
    assert caught.value.reply_code == 403
    assert caught.value.reply_text == REFUSED


async def test_external_refused_without_a_certificate(broker: Broker, pki: PKI) -> None:
    url = amqps(broker, pki, None, "&auth_mechanism=external")
    with pytest.raises(AuthenticationError) as caught:
        await kiltmq.connect(url)
    assert caught.value.reply_text == REFUSED


async def test_a_password_login_still_works_with_a_certificate(broker: Broker, pki: PKI) -> None:
    async with kiltmq.connect(amqps(broker, pki, pki.app)) as conn:
        assert (await conn.channel()).is_open
        assert usernames(broker) == ["guest"]


async def test_external_is_not_offered_on_plain_connections(broker: Broker) -> None:
    with pytest.raises(kiltmq.ConnectError, match="none of EXTERNAL"):
        await kiltmq.connect(broker.url + "?auth_mechanism=external")


async def test_external_is_not_offered_without_verification(pki: PKI) -> None:
    with tls_broker(pki, tls_ca=None, tls_verify="none") as broker:
        url = f"amqps://localhost:{broker.tls_port}/?cacertfile={pki.ca.cert}"
        with pytest.raises(kiltmq.ConnectError, match="none of EXTERNAL"):
            await kiltmq.connect(url + "&auth_mechanism=external")
        async with kiltmq.connect(url.replace("amqps://", "amqps://guest:guest@")) as conn:
            assert (await conn.channel()).is_open


async def test_client_accepts_an_ssl_context(broker: Broker, pki: PKI) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(pki.app.cert, pki.app.key)
    url = f"amqps://localhost:{broker.tls_port}/?auth_mechanism=external"
    async with kiltmq.connect(url, ssl_context=context) as conn:
        assert (await conn.channel()).is_open
        assert usernames(broker) == [APP_DN]


def test_blocking_client_with_an_ssl_context(broker: Broker, pki: PKI) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(pki.app.cert, pki.app.key)
    url = f"amqps://localhost:{broker.tls_port}/?auth_mechanism=external"
    with kiltmq.blocking.connect(url, ssl_context=context) as conn:
        assert conn.channel().is_open
        assert usernames(broker) == [APP_DN]


def test_large_bodies_over_tls_both_ways_on_uvloop(broker: Broker, pki: PKI) -> None:
    """Large publishes (written unjoined where the transport writes vectors) and large
    deliveries go through TLS transports whole, on the client's uvloop too."""
    pytest.importorskip("uvloop")
    bodies = [bytes([i]) * size for i, size in enumerate((16384, 65536, 131064, 300000))]

    async def main() -> list[bytes]:
        async with kiltmq.connect(amqps(broker, pki)) as conn:
            ch = await conn.channel()
            queue = (await ch.queue_declare(exclusive=True)).queue
            for body in bodies:
                await ch.basic_publish(body, routing_key=queue)
            received: list[bytes] = []
            for _ in bodies:
                message = await ch.basic_get(queue, no_ack=True)
                assert message is not None
                received.append(message.body)
            return received

    assert event_loop.run(main(), uvloop=True) == bodies


# -- refusals at the TLS handshake -----------------------------------------------------


async def test_verify_required_refuses_a_client_without_certificate(pki: PKI) -> None:
    with tls_broker(pki, tls_verify="required") as broker:
        with pytest.raises(kiltmq.ConnectError):
            await kiltmq.connect(amqps(broker, pki))
        async with kiltmq.connect(amqps(broker, pki, pki.app)) as conn:
            assert (await conn.channel()).is_open


async def test_a_certificate_from_another_ca_is_refused(pki: PKI) -> None:
    with tls_broker(pki, tls_verify="required") as broker:
        with pytest.raises(kiltmq.ConnectError):
            await kiltmq.connect(amqps(broker, pki, pki.forged, "&auth_mechanism=external"))
        assert usernames(broker) == []


async def test_the_client_refuses_a_server_it_does_not_trust(broker: Broker, pki: PKI) -> None:
    url = f"amqps://guest:guest@localhost:{broker.tls_port}/?cacertfile={pki.other_ca.cert}"
    with pytest.raises(kiltmq.ConnectError, match="certificate"):
        await kiltmq.connect(url)


def test_plain_amqp_on_the_tls_port_is_logged_and_closed(
    broker: Broker, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    port = broker.tls_port
    assert port is not None
    with caplog.at_level(logging.INFO, logger="kiltmq.broker"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
        assert b"AMQP" not in received  # a TLS alert at most, never AMQP

        def failures() -> list[str]:
            messages = [r.getMessage() for r in caplog.records]
            return [m for m in messages if "TLS handshake failed" in m]

        for _ in range(200):  # the line may come just after the socket closed
            if failures():
                break
            time.sleep(0.05)
        assert len(failures()) == 1
    # the broker serves TLS clients as before
    params = pika.URLParameters(f"amqps://guest:guest@localhost:{port}/")
    params.ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=str(pki.ca.cert)))
    conn = pika.BlockingConnection(params)
    assert conn.is_open
    conn.close()
    assert broker.call_in_loop(lambda: len(broker.connections)) <= 1


# -- pika and aio-pika -----------------------------------------------------------------


def _pika_params(broker: Broker, pki: PKI, client: KeyPair | None) -> pika.URLParameters:
    params = pika.URLParameters(f"amqps://guest:guest@localhost:{broker.tls_port}/")
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    params.ssl_options = pika.SSLOptions(context, "localhost")
    params.socket_timeout = 10
    return params


def test_pika_plain_login_over_tls(broker: Broker, pki: PKI) -> None:
    conn = pika.BlockingConnection(_pika_params(broker, pki, None))
    try:
        ch = conn.channel()
        queue = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", queue, b"pika over TLS")
        _, _, body = ch.basic_get(queue, auto_ack=True)
        assert body == b"pika over TLS"
    finally:
        conn.close()


def test_pika_external(broker: Broker, pki: PKI) -> None:
    params = _pika_params(broker, pki, pki.app)
    params.credentials = pika.credentials.ExternalCredentials()
    conn = pika.BlockingConnection(params)
    try:
        assert usernames(broker) == [APP_DN]
        assert conn.channel().is_open
    finally:
        conn.close()


def test_pika_external_refused(broker: Broker, pki: PKI) -> None:
    params = _pika_params(broker, pki, pki.stranger)
    params.credentials = pika.credentials.ExternalCredentials()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as caught:
        pika.BlockingConnection(params)
    assert REFUSED in str(caught.value)


async def test_aio_pika_plain_and_external(broker: Broker, pki: PKI) -> None:
    base = f"amqps://guest:guest@localhost:{broker.tls_port}/?cafile={pki.ca.cert}"
    conn = await aio_pika.connect(base)
    try:
        ch = await conn.channel()
        queue = await ch.declare_queue("", exclusive=True)
        await ch.default_exchange.publish(aio_pika.Message(b"aio over TLS"), queue.name)
        message = await queue.get(no_ack=True, timeout=10)
        assert message is not None and message.body == b"aio over TLS"
    finally:
        await conn.close()
    external = f"{base}&certfile={pki.app.cert}&keyfile={pki.app.key}&auth=external"
    conn = await aio_pika.connect(external)
    try:
        assert usernames(broker) == [APP_DN]
    finally:
        await conn.close()


# -- configuration ---------------------------------------------------------------------


def test_tls_settings_are_checked(pki: PKI, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot load TLS certificate"):
        Broker(tls_cert=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="needs a CA"):
        Broker(tls_cert=pki.server.cert, tls_key=pki.server.key, tls_verify="required")
    with pytest.raises(ValueError, match="verify must be one of"):
        Broker(tls_cert=pki.server.cert, tls_key=pki.server.key, tls_verify="sometimes")
    with pytest.raises(ValueError, match="certificate"):
        Broker(tls_port=5671)
    assert Broker(port=0).tls_port is None and Broker(port=0).amqps_url is None
    broker = Broker(tls_cert=pki.server.cert, tls_key=pki.server.key)
    assert broker.tls_port == 5671


async def test_a_tls_client_over_the_connection_limit_waits(pki: PKI) -> None:
    with tls_broker(pki, max_connections=1) as broker:

        def waiting() -> int:
            count: int = broker.call_in_loop(lambda: sum(len(e.waiting) for e in broker.endpoints))
            return count

        first = await kiltmq.connect(amqps(broker, pki))
        second = asyncio.ensure_future(kiltmq.connect(amqps(broker, pki)))
        for _ in range(400):  # until the broker holds it back
            if waiting() == 1:
                break
            await asyncio.sleep(0.025)
        assert waiting() == 1 and not second.done()
        await first.close()
        conn = await second
        assert (await conn.channel()).is_open
        await conn.close()


def test_user_names_are_written_as_rabbitmq_writes_them() -> None:
    subject = (
        (("countryName", "GB"),),
        (("organizationName", "Smith, Jones & Co"),),
        (("commonName", "#1 app "), ("userId", "a+b")),
        (("commonName", "second"),),
    )
    cert = {"subject": subject}
    assert certificate_user_name(cert, "distinguished_name") == (
        "CN=second,CN=\\#1 app\\ +UID=a\\+b,O=Smith\\, Jones & Co,C=GB"
    )
    assert certificate_user_name(cert, "common_name") == "#1 app ,second"
    assert certificate_user_name({"subject": ((("countryName", "GB"),),)}, "common_name") is None
