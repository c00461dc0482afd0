"""AMQP URL parsing (RabbitMQ's URI spec and query parameters)."""

from __future__ import annotations

import ssl

import pytest

from kiltmq.client.url import DEFAULT_URL, InvalidURL, default_url, parse_addresses, parse_url


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


def test_host_list_shares_credentials_vhost_and_query() -> None:
    first, second, third = parse_addresses(
        "amqps://us%40er:pw@node1:5681,node2,[::1]:5683/prod?heartbeat=5&verify=verify_none"
    )
    assert [(p.host, p.port) for p in (first, second, third)] == [
        ("node1", 5681),
        ("node2", 5671),
        ("::1", 5683),
    ]
    for p in (first, second, third):
        assert (p.username, p.password, p.virtual_host) == ("us@er", "pw", "prod")
        assert p.ssl and not p.verify and p.heartbeat == 5


def test_list_of_urls_keeps_each_url_and_the_order() -> None:
    given = parse_url("amqp://b:5673")
    addresses = parse_addresses(["amqp://x:y@a:5672/v1", given, "amqp://c1,c2:5690/"])
    assert [(p.host, p.port) for p in addresses] == [
        ("a", 5672),
        ("b", 5673),
        ("c1", 5672),
        ("c2", 5690),
    ]
    assert (addresses[0].username, addresses[0].virtual_host) == ("x", "v1")
    assert addresses[1] is given
    assert parse_addresses("amqp://only") == (parse_url("amqp://only"),)


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ("amqp://h1,,h2", "an empty host"),
        ("amqp://h1,", "an empty host"),
        ("amqp://h1:5672,amqp://h2:5672", "several URLs in one string"),
        ([], "no AMQP URL"),
        ("amqp://h1,h2:port", "invalid AMQP URL"),
        ("http://h1,h2", "scheme"),
    ],
)
def test_bad_address_lists(urls: str | list[str], message: str) -> None:
    with pytest.raises(InvalidURL, match=message):
        parse_addresses(urls)


def test_parse_url_refuses_a_host_list() -> None:
    with pytest.raises(InvalidURL, match="several hosts"):
        parse_url("amqp://h1,h2/")


def test_default_address_list_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://n1:5681,n2:5682/")
    assert [p.port for p in parse_addresses()] == [5681, 5682]
