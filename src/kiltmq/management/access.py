"""Who may use the management API, and what each user sees and changes.

HTTP basic authentication against the broker's users (the same password hashes as AMQP
logins), then RabbitMQ's rules: a user needs one of the tags ``management``,
``policymaker``, ``monitoring`` or ``administrator``; users that may connect only from
loopback (``guest``) may use the API only from loopback. ``administrator`` sees and
changes everything; ``monitoring`` also sees every connection, channel and node; the
others see the vhosts they have permissions in and their own connections. Refusals are
RabbitMQ's 401 replies.

The web UI's pages call the same API with a session cookie instead of basic
authentication (:mod:`kiltmq.management.sessions`); a state-changing request of a
session must carry the session's CSRF token in ``X-CSRF-Token`` (403 otherwise).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from aiohttp import web

from kiltmq.broker.admin import ManagedBroker
from kiltmq.broker.auth import check_password
from kiltmq.management.errors import REALM, ApiError, login_failed, not_authorised
from kiltmq.management.sessions import COOKIE, CSRF_HEADER, Session, Sessions

__all__ = [
    "MANAGEMENT_TAGS", "SAFE_METHODS", "Caller", "authenticate", "check_login", "is_loopback",
    "session_caller",
]

#: Methods that change nothing (no CSRF token needed).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Tags that let a user use the management API at all.
MANAGEMENT_TAGS = frozenset({"management", "policymaker", "monitoring", "administrator"})


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass(frozen=True)
class Caller:
    """The authenticated user of one request."""

    name: str
    tags: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "administrator" in self.tags

    @property
    def is_monitor(self) -> bool:
        return self.is_admin or "monitoring" in self.tags

    @property
    def is_policymaker(self) -> bool:
        return self.is_admin or "policymaker" in self.tags

    def require_admin(self) -> None:
        if not self.is_admin:
            raise not_authorised("Not administrator user")

    def require_monitor(self) -> None:
        if not self.is_monitor:
            raise not_authorised("Not monitor user")

    def login_vhosts(self, broker: ManagedBroker) -> set[str]:
        """The vhosts the user has permissions in."""
        return {v for (u, v) in broker.auth.permissions if u == self.name and v in broker.vhosts}

    def visible_vhosts(self, broker: ManagedBroker) -> set[str]:
        """The vhosts whose objects the user sees in lists: every vhost for an
        administrator, else those with permissions."""
        if self.is_admin:
            return set(broker.vhosts)
        return self.login_vhosts(broker)

    def listed_vhosts(self, broker: ManagedBroker) -> set[str]:
        """The vhosts /api/vhosts lists: every vhost for administrators and monitors."""
        if self.is_monitor:
            return set(broker.vhosts)
        return self.login_vhosts(broker)

    def require_vhost(self, broker: ManagedBroker, vhost: str) -> None:
        """Refuse a vhost the user has no permissions in (an unknown vhost passes: it is
        answered with 404 afterwards, as RabbitMQ does)."""
        if self.is_admin or vhost not in broker.vhosts:
            return
        if vhost not in self.login_vhosts(broker):
            raise not_authorised("User not authorised to access virtual host")

    def require_vhost_visible(self, broker: ManagedBroker, vhost: str) -> None:
        """As :meth:`require_vhost`, monitors passing too."""
        if not self.is_monitor:
            self.require_vhost(broker, vhost)

    def sees_user(self, user: str) -> bool:
        """Whether connections and channels of ``user`` are shown to this caller."""
        return self.is_monitor or user == self.name


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def check_login(
    broker: ManagedBroker, name: str, password: str, remote: str | None
) -> Caller:
    """The caller ``name`` logging in with ``password`` from ``remote``, or the
    ApiError RabbitMQ answers with (each counted as an ``http`` login attempt)."""
    attempts = broker.auth.attempts
    user = broker.auth.users.get(name)
    if (
        user is None
        or user.password_hash is None
        or not check_password(password, user.password_hash)
    ):
        attempts.record("http", False)
        raise login_failed()
    try:
        caller = _allowed(broker, name, remote)
    except ApiError:
        attempts.record("http", False)
        raise
    attempts.record("http", True)
    return caller


def _allowed(broker: ManagedBroker, name: str, remote: str | None) -> Caller:
    user = broker.auth.users[name]
    if broker.auth.loopback_only(name) and not is_loopback(remote):
        raise not_authorised("User can only log in via localhost")
    if not user.tags & MANAGEMENT_TAGS:
        raise not_authorised("Not management user")
    return Caller(name, user.tags)


def session_caller(
    request: web.Request, broker: ManagedBroker, sessions: Sessions
) -> tuple[Caller, Session] | None:
    """The caller of a request sent with a live session cookie, or None (no cookie, an
    ended session, a user removed or given a new password since)."""
    session = sessions.find(request.cookies.get(COOKIE))
    if session is None:
        return None
    user = broker.auth.users.get(session.user)
    if user is None or user.password_hash != session.password_hash:
        sessions.close(session.token)
        return None
    return _allowed(broker, session.user, request.remote), session


def authenticate(
    request: web.Request, broker: ManagedBroker, sessions: Sessions | None = None
) -> Caller:
    """The caller of ``request``, or the ApiError RabbitMQ answers with."""
    header = request.headers.get("Authorization")
    if header is None:
        if sessions is not None and COOKIE in request.cookies:
            found = session_caller(request, broker, sessions)
            if found is None:  # no challenge: the page sends its user to the login form
                raise ApiError(401, "not_authorized", "Login failed")
            who, session = found
            if request.method not in SAFE_METHODS and not session.csrf_matches(
                request.headers.get(CSRF_HEADER)
            ):
                raise ApiError(403, "forbidden", "CSRF token missing or wrong")
            return who
        raise ApiError(401, None, headers={"WWW-Authenticate": REALM})
    credentials = _credentials(header)
    if credentials is None:
        raise login_failed()
    name, password = credentials
    return check_login(broker, name, password, request.remote)
