"""Users, password hashes and per-vhost permissions.

Password hashes use RabbitMQ's ``rabbit_password_hashing_sha256`` scheme, so hashes from a
RabbitMQ definitions export work here and the other way round: a random 4-byte salt, then
``base64(salt + sha256(salt + utf8(password)))``.

Permissions follow RabbitMQ: per user and vhost, three regular expressions (configure,
write, read) matched (unanchored, ``re.search``) against the resource name. The empty
string means "nothing" (RabbitMQ treats it as ``^$``). The default exchange is checked
under the name ``amq.default``.

Topic permissions (RabbitMQ's "topic authorisation") are kept per user, vhost and
exchange: a write and a read regex matched against routing keys, for topic exchanges
only. ``{username}`` and ``{vhost}`` in a pattern stand for the user's name and the
vhost's (expanded when the permission is set, since both are fixed by its key). Where a
user has no topic permission for an exchange, every routing key is allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from kiltmq.broker.auth_attempts import AuthAttempts

__all__ = [
    "HASHING_ALGORITHMS",
    "AuthDB",
    "Permission",
    "TopicPermission",
    "User",
    "check_password",
    "hash_password",
    "hashing_algorithm",
    "pcre_error",
    "topic_refused",
]


def hash_password(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ-compatible salted SHA-256 hash of ``password`` (base64 text)."""
    if salt is None:
        salt = os.urandom(4)
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode("ascii")


#: RabbitMQ's password hashing modules by the length of their digest.
HASHING_ALGORITHMS = {
    16: ("rabbit_password_hashing_md5", hashlib.md5),
    32: ("rabbit_password_hashing_sha256", hashlib.sha256),
    64: ("rabbit_password_hashing_sha512", hashlib.sha512),
}


def _salt_digest(password_hash: str) -> tuple[bytes, bytes] | None:
    try:
        raw = base64.b64decode(password_hash.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    if len(raw) - 4 not in HASHING_ALGORITHMS:
        return None
    return raw[:4], raw[4:]


def hashing_algorithm(password_hash: str) -> str | None:
    """The name of RabbitMQ's module that made ``password_hash`` (None: not a hash)."""
    parts = _salt_digest(password_hash)
    return None if parts is None else HASHING_ALGORITHMS[len(parts[1])][0]


def check_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`, or by RabbitMQ
    with SHA-512 or MD5 (told apart by the digest's length)."""
    parts = _salt_digest(password_hash)
    if parts is None:
        return False
    salt, digest = parts
    hashing = HASHING_ALGORITHMS[len(digest)][1]
    return hmac.compare_digest(hashing(salt + password.encode()).digest(), digest)


@dataclass(slots=True)
class User:
    """A user account. ``password_hash`` None means the user cannot log in with a password.
    ``limits``: ``max-connections`` and ``max-channels`` as set (see
    :mod:`kiltmq.broker.user_limits`), empty for none."""

    name: str
    password_hash: str | None
    tags: frozenset[str] = frozenset()
    limits: dict[str, int] = field(default_factory=dict)

    @classmethod
    def with_password(
        cls, name: str, password: str, tags: Iterable[str] = (),
        limits: dict[str, int] | None = None,
    ) -> User:
        return cls(name, hash_password(password), frozenset(tags), dict(limits or {}))


def pcre_error(exc: re.error) -> tuple[str, int]:
    """The message and position RabbitMQ's regex library (PCRE) gives for the error
    ``exc`` where the two differ (Python's message and 1-based position otherwise)."""
    message = str(exc.msg)
    position = (exc.pos or 0) + 1
    if message.startswith("missing ), unterminated subpattern"):
        message, position = "missing )", len(exc.pattern or "")
    elif message.startswith("unterminated character set"):
        message = "missing terminating ] for character class"
        position = len(exc.pattern or "")
    return message, position


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern if pattern else "^$")


@dataclass(slots=True)
class Permission:
    """The configure, write and read regexes of one user in one vhost."""

    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def allows(self, action: str, name: str) -> bool:
        """Whether ``action`` ("configure", "write" or "read") is allowed on ``name``."""
        key = (action, name)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        pattern = self._compiled.get(action)
        if pattern is None:
            pattern = self._compiled[action] = _compile(getattr(self, action))
        result = pattern.search(name) is not None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = result
        return result


@dataclass(slots=True)
class TopicPermission:
    """The write and read regexes of one user for the routing keys of one topic exchange
    in one vhost (as set; ``allows`` matches them with ``{username}`` and ``{vhost}``
    expanded)."""

    exchange: str
    write: str
    read: str
    _write: re.Pattern[str] | None = field(default=None, repr=False)
    _read: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, user: str, vhost: str, exchange: str, write: str, read: str
    ) -> TopicPermission:
        """A topic permission of ``user`` in ``vhost``; re.error for a bad regex."""
        compiled: list[re.Pattern[str] | None] = []
        for pattern in (write, read):
            _compile(pattern)
            expanded = pattern.replace("{username}", user).replace("{vhost}", vhost)
            try:
                compiled.append(_compile(expanded))
            except re.error:  # a name that breaks the pattern: nothing matches
                compiled.append(None)
        return cls(exchange, write, read, compiled[0], compiled[1])

    def allows(self, action: str, routing_key: str) -> bool:
        """Whether ``action`` ("write" or "read") is allowed with ``routing_key``."""
        pattern = self._write if action == "write" else self._read
        return pattern is not None and pattern.search(routing_key) is not None


def topic_refused(routing_key: str, exchange: str, vhost: str, user: str) -> str:
    """RabbitMQ's text of a 403 for a routing key a topic permission does not allow."""
    return (
        f"ACCESS_REFUSED - access to topic '{routing_key}' in exchange '{exchange}' "
        f"in vhost '{vhost}' refused for user '{user}'"
    )


class AuthDB:
    """Users, their permissions per vhost, and who may connect only from loopback."""

    def __init__(self, loopback_users: Iterable[str] = ("guest",)) -> None:
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.loopback_users: set[str] = set(loopback_users)
        #: (user, vhost) -> exchange -> topic permission; no key: no topic permissions.
        self.topic_permissions: dict[tuple[str, str], dict[str, TopicPermission]] = {}
        #: Logins tried over AMQP and the management API.
        self.attempts = AuthAttempts()

    def add_user(self, user: User) -> None:
        self.users[user.name] = user

    def set_permission(
        self, user: str, vhost: str, configure: str = ".*", write: str = ".*", read: str = ".*"
    ) -> None:
        # Compile now so a bad regex fails at configuration time, not at first use.
        for pattern in (configure, write, read):
            _compile(pattern)
        self.permissions[(user, vhost)] = Permission(configure, write, read)

    def remove_user(self, name: str) -> None:
        """Forget user ``name`` and their permissions."""
        self.users.pop(name, None)
        for key in [k for k in self.permissions if k[0] == name]:
            del self.permissions[key]
        for key in [k for k in self.topic_permissions if k[0] == name]:
            del self.topic_permissions[key]

    def remove_vhost(self, name: str) -> None:
        """Forget every permission and topic permission in vhost ``name``."""
        for key in [k for k in self.permissions if k[1] == name]:
            del self.permissions[key]
        for key in [k for k in self.topic_permissions if k[1] == name]:
            del self.topic_permissions[key]

    def set_topic_permission(
        self, user: str, vhost: str, exchange: str, write: str, read: str
    ) -> None:
        """Set ``user``'s topic permission for ``exchange`` in ``vhost`` (re.error for a
        bad regex, nothing changed then)."""
        permission = TopicPermission.build(user, vhost, exchange, write, read)
        self.topic_permissions.setdefault((user, vhost), {})[exchange] = permission

    def clear_topic_permissions(
        self, user: str, vhost: str, exchange: str | None = None
    ) -> None:
        """Remove ``user``'s topic permission for ``exchange`` in ``vhost`` (None: all of
        them there)."""
        key = (user, vhost)
        if exchange is None:
            self.topic_permissions.pop(key, None)
            return
        per_exchange = self.topic_permissions.get(key)
        if per_exchange is not None:
            per_exchange.pop(exchange, None)
            if not per_exchange:
                del self.topic_permissions[key]

    def topic_permission(self, user: str, vhost: str) -> dict[str, TopicPermission] | None:
        """``user``'s topic permissions in ``vhost`` by exchange (None: none)."""
        return self.topic_permissions.get((user, vhost))

    def clear_permission(self, user: str, vhost: str) -> None:
        self.permissions.pop((user, vhost), None)

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if ``password`` is right, else None."""
        user = self.users.get(username)
        if user is None or user.password_hash is None:
            return None
        return user if check_password(password, user.password_hash) else None

    def permission(self, user: str, vhost: str) -> Permission | None:
        return self.permissions.get((user, vhost))

    def loopback_only(self, user: str) -> bool:
        return user in self.loopback_users
