"""amqps:// through the ssl module: a TLS-terminating proxy (with a self-signed
certificate made by openssl) in front of each broker."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import kiltmq
from kiltmq import ConnectError

from .conftest import TcpProxy, unavailable


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        unavailable("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
async def tls_proxy(amqp_url: str, certificate: tuple[Path, Path]) -> AsyncIterator[TcpProxy]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    proxy = await TcpProxy(amqp_url, ssl_context=context).start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_amqps_with_ca_file(tls_proxy: TcpProxy, certificate: tuple[Path, Path]) -> None:
    url = f"amqps://guest:guest@localhost:{tls_proxy.port}/?cacertfile={certificate[0]}"
    async with kiltmq.connect(url) as conn:
        ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        await ch.basic_publish(b"secret", routing_key=queue)
        message = await ch.basic_get(queue, no_ack=True)
        assert message is not None and message.body == b"secret"
        assert conn._transport is not None
        assert conn._transport.get_extra_info("ssl_object") is not None


async def test_amqps_verify_none(tls_proxy: TcpProxy) -> None:
    url = f"amqps://guest:guest@127.0.0.1:{tls_proxy.port}/?verify=verify_none"
    async with kiltmq.connect(url) as conn:
        assert (await conn.channel()).is_open


async def test_amqps_rejects_untrusted_certificate(tls_proxy: TcpProxy) -> None:
    with pytest.raises(ConnectError, match="certificate"):
        await kiltmq.connect(f"amqps://guest:guest@localhost:{tls_proxy.port}/")


async def test_amqps_checks_the_server_name(
    tls_proxy: TcpProxy, certificate: tuple[Path, Path]
) -> None:
    url = (
        f"amqps://guest:guest@localhost:{tls_proxy.port}/?cacertfile={certificate[0]}"
        "&server_name_indication=elsewhere.example"
    )
    with pytest.raises(ConnectError):
        await kiltmq.connect(url)
