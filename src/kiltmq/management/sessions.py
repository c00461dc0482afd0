"""Browser sessions of the management web UI: a random token in an HttpOnly,
SameSite=Strict cookie names a server-side :class:`Session` (the user and the session's
CSRF token). A session ends on logout, after :data:`LIFETIME` seconds unused, or when
the user's password or the user changes."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

__all__ = ["COOKIE", "CSRF_HEADER", "LIFETIME", "Session", "Sessions"]

#: The cookie holding the session token.
COOKIE = "kiltmq_session"
#: The header carrying the CSRF token on every state-changing request of a session.
CSRF_HEADER = "X-CSRF-Token"
#: Seconds a session lives without use.
LIFETIME = 8 * 3600.0
#: Sessions kept at most (the oldest go first).
MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str
    user: str
    #: The user's password hash at login: a new password ends the session.
    password_hash: str | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = 0.0

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    """The open sessions of one management server (kept in memory)."""

    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self._open: dict[str, Session] = {}

    def open(self, user: str, password_hash: str | None) -> Session:
        if len(self._open) >= MAX_SESSIONS:
            self._sweep()
            while len(self._open) >= MAX_SESSIONS:
                del self._open[next(iter(self._open))]
        session = Session(secrets.token_urlsafe(32), user, password_hash)
        session.expires = time.monotonic() + self.lifetime
        self._open[session.token] = session
        return session

    def find(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its lifetime renewed), or None."""
        if not token:
            return None
        session = self._open.get(token)
        if session is None:
            return None
        now = time.monotonic()
        if session.expires < now:
            del self._open[token]
            return None
        session.expires = now + self.lifetime
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._open.pop(token, None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._open.items() if s.expires < now]:
            del self._open[token]
