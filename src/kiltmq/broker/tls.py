"""TLS for amqps listeners: the server's SSL context, and the user name a verified client
certificate stands for in SASL EXTERNAL (as RabbitMQ's rabbitmq_auth_mechanism_ssl).

``verify`` is RabbitMQ's peer verification: ``none`` (verify_none: no client certificate
is asked for), ``optional`` (verify_peer with fail_if_no_peer_cert false: a certificate
is asked for and, if sent, must chain to the CA) or ``required`` (fail_if_no_peer_cert
true: a client without a valid certificate fails the TLS handshake).

The user name comes from the certificate's subject, as RabbitMQ's ``ssl_cert_login_from``:
``distinguished_name`` (RabbitMQ's default; RFC 4514 order and escaping, e.g.
``CN=app,O=shop,C=GB``) or ``common_name`` (the CN, several joined with ``,``).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOGIN_FROM",
    "VERIFY_MODES",
    "ExternalLogin",
    "TLSSettings",
    "certificate_user_name",
    "external_login",
    "feed_protocol",
]

VERIFY_MODES = ("none", "optional", "required")
LOGIN_FROM = ("distinguished_name", "common_name")

_VERIFY = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}

#: Attribute names (as the ssl module gives them) in RabbitMQ's short form.
_SHORT_NAMES = {
    "surname": "SN",
    "givenName": "GIVENNAME",
    "initials": "INITIALS",
    "generationQualifier": "GENERATIONQUALIFIER",
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "title": "TITLE",
    "countryName": "C",
    "serialNumber": "SERIALNUMBER",
    "pseudonym": "PSEUDONYM",
    "domainComponent": "DC",
    "emailAddress": "EMAILADDRESS",
    "streetAddress": "STREET",
    "userId": "UID",
}


@dataclass(frozen=True)
class TLSSettings:
    """What an amqps listener needs: certificate and key files, the CA that client
    certificates must chain to, the peer verification mode and where EXTERNAL's user
    name comes from. :meth:`context` raises ValueError for unusable settings."""

    certfile: str
    keyfile: str | None = None
    cafile: str | None = None
    #: None: ``optional`` with a CA file, else ``none``.
    verify: str | None = None
    login_from: str = "distinguished_name"

    @classmethod
    def from_options(
        cls,
        certfile: str | os.PathLike[str] | None,
        keyfile: str | os.PathLike[str] | None = None,
        cafile: str | os.PathLike[str] | None = None,
        verify: str | None = None,
        login_from: str = "distinguished_name",
    ) -> TLSSettings | None:
        """The settings, None without a certificate (ValueError if other TLS options
        are given without one)."""
        if certfile is None:
            if keyfile is not None or cafile is not None or verify is not None:
                raise ValueError("TLS options need a certificate (tls_cert)")
            return None
        return cls(
            os.fspath(certfile),
            os.fspath(keyfile) if keyfile is not None else None,
            os.fspath(cafile) if cafile is not None else None,
            verify,
            login_from,
        )

    @property
    def external_login_from(self) -> str | None:
        """``login_from`` when client certificates are verified (EXTERNAL is offered)."""
        return self.login_from if self.verify_mode != "none" else None

    @property
    def verify_mode(self) -> str:
        if self.verify is not None:
            return self.verify
        return "optional" if self.cafile else "none"

    def context(self) -> ssl.SSLContext:
        """A server context: TLS 1.2 or later, the default ciphers of the ssl module."""
        verify = self.verify_mode
        if verify not in VERIFY_MODES:
            raise ValueError(f"TLS verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
        if self.login_from not in LOGIN_FROM:
            raise ValueError(
                f"TLS login_from must be one of {', '.join(LOGIN_FROM)}, not {self.login_from!r}"
            )
        if verify != "none" and not self.cafile:
            raise ValueError(f"TLS verify {verify} needs a CA certificate file")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.certfile, self.keyfile)
        except (OSError, ssl.SSLError) as exc:
            reason = _reason(exc)
            raise ValueError(f"cannot load TLS certificate {self.certfile}: {reason}") from None
        if self.cafile:
            try:
                context.load_verify_locations(cafile=self.cafile)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(
                    f"cannot load TLS CA certificate {self.cafile}: {_reason(exc)}"
                ) from None
        context.verify_mode = _VERIFY[verify]
        return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    if isinstance(exc, OSError):
        return str(exc.strerror or exc)
    return str(exc)


def _escape(value: str) -> str:
    """An attribute value escaped as RabbitMQ's rabbit_cert_info does (RFC 4514)."""
    out: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        code = ord(char)
        at_edge = (index == 0 and char in " #") or (index == last and char == " ")
        if at_edge or char in '"+,;<>\\':
            out.append("\\" + char)
        elif code < 32 or code >= 126:
            out.append(f"\\{code:02X}")
        else:
            out.append(char)
    return "".join(out)


def certificate_user_name(peercert: dict[str, Any], login_from: str) -> str | None:
    """The user name in ``peercert`` (as ``SSLSocket.getpeercert()`` returns it), or
    None if it has no such name."""
    subject = peercert.get("subject") or ()
    if login_from == "common_name":
        names = [value for rdn in subject for key, value in rdn if key == "commonName"]
        return ",".join(names) if names else None
    parts = [
        "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        for rdn in subject
    ]
    return ",".join(reversed(parts)) if parts else None


@dataclass(frozen=True, slots=True)
class ExternalLogin:
    """What a TLS connection offers SASL EXTERNAL: the user name its certificate stands
    for, or why there is none (RabbitMQ's refusal reason, for the log)."""

    name: str | None
    reason: str = ""


def external_login(ssl_object: Any, login_from: str) -> ExternalLogin:
    """The EXTERNAL identity of a connection whose TLS handshake is done."""
    peercert = ssl_object.getpeercert() if ssl_object is not None else None
    if not peercert:
        return ExternalLogin(None, "connection peer presented no TLS (x.509) certificate")
    name = certificate_user_name(peercert, login_from)
    if name is None:
        return ExternalLogin(None, "no name found")
    return ExternalLogin(name)


def feed_protocol(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give ``data`` to ``protocol`` as its transport would (buffered or not)."""
    if isinstance(protocol, asyncio.Protocol):
        protocol.data_received(data)
        return
    get_buffer = protocol.get_buffer  # type: ignore[attr-defined]  # a BufferedProtocol
    view = memoryview(data)
    while view:
        buffer = memoryview(get_buffer(len(view)))
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)  # type: ignore[attr-defined]
        view = view[size:]
