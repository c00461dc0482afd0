"""AMQP URL parsing (RabbitMQ's URI spec and query parameters)."""

from __future__ import annotations

import ssl

import pytest

from kiltmq.client.url import DEFAULT_URL, InvalidURL, default_url, parse_url


def test_full_url() -> None:
    p = parse_url("amqp://us%40er:p%3Ass@example.com:5673/v%2Fhost")
    assert (p.username, p.password, p.host, p.port) == ("us@er", "p:ss", "example.com", 5673)
    assert p.virtual_host == "v/host"
    assert not p.ssl


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://localhost", "/"),
        ("amqp://localhost/", "/"),
        ("amqp://localhost/%2F", "/"),
        ("amqp://localhost/%2f", "/"),
        ("amqp://localhost/prod", "prod"),
        ("amqp://localhost/%2Fprod", "/prod"),
    ],
)
def test_virtual_host(url: str, vhost: str) -> None:
    assert parse_url(url).virtual_host == vhost


def test_defaults() -> None:
    p = parse_url("amqp://")
    assert (p.host, p.port, p.username, p.password) == ("localhost", 5672, "guest", "guest")
    assert p.heartbeat == 60 and p.connection_timeout == 10.0
    assert parse_url("amqps://h").port == 5671


def test_query_parameters() -> None:
    p = parse_url(
        "amqp://h/?heartbeat=5&frame_max=8192&channel_max=10&connection_timeout=2500"
        "&auth_mechanism=amqplain&auth_mechanism=plain"
    )
    assert p.heartbeat == 5
    assert p.frame_max == 8192
    assert p.channel_max == 10
    assert p.connection_timeout == 2.5
    assert p.auth_mechanisms == ("AMQPLAIN", "PLAIN")


def test_tls_parameters() -> None:
    p = parse_url("amqps://h/?verify=verify_none&server_name_indication=other.example")
    assert p.ssl and not p.verify
    assert p.tls_server_hostname() == "other.example"
    context = p.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    assert parse_url("amqps://h/?server_name_indication=disable").tls_server_hostname() == ""
    assert parse_url("amqps://h/").tls_server_hostname() == "h"
    assert parse_url("amqp://h/").ssl_context() is None


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "amqp://localhost/a/b",
        "amqp://localhost/?heartbeat=soon",
        "amqp://localhost/?nonsense=1",
        "amqp://localhost/?frame_max=100",
        "amqp://localhost/?auth_mechanism=KERBEROS",
        "amqp://localhost/?verify=maybe",
        "amqp://localhost:notaport/",
    ],
)
def test_invalid(url: str) -> None:
    with pytest.raises(InvalidURL):
        parse_url(url)


def test_default_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    assert default_url() == DEFAULT_URL
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@elsewhere:1234/x")
    assert parse_url().host == "elsewhere"


def test_display_hides_password() -> None:
    assert "secret" not in parse_url("amqp://u:secret@h/").display
