"""The embeddable broker: configuration, virtual hosts, users, listeners and lifecycle.

::

    async with Broker(port=0) as broker:        # port 0 picks a free port
        connect_somehow(broker.url)              # amqp://guest:guest@127.0.0.1:<port>/

    with Broker(port=0) as broker:               # from synchronous code: runs its own
        pika.BlockingConnection(pika.URLParameters(broker.url))   # loop in a thread

Everything runs on one asyncio event loop; the broker's objects must only be touched
from it (``start_in_thread`` runs that loop in a daemon thread).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kiltmq.broker.auth import AuthDB, Permission, User
from kiltmq.broker.consumer_timeout import ConsumerTimeout
from kiltmq.broker.control import ControlError, ControlServer, default_socket_path
from kiltmq.broker.loop_thread import LoopThread
from kiltmq.broker.server import DEFAULT_MAX_MESSAGE_SIZE, ServerConnection, check_limits
from kiltmq.broker.store import MemoryStore, SQLiteStore, Store
from kiltmq.broker.vhost import VirtualHost
from kiltmq.broker.vhost_limits import parse_limits
from kiltmq.protocol.errors import ConnectionForced

__all__ = ["Broker", "Listener"]

log = logging.getLogger("kiltmq.broker")

Listener = tuple[str, int]
UsersArg = Mapping[str, str] | Iterable[User] | None
PermissionsArg = Mapping[str, Mapping[str, "tuple[str, str, str] | Permission"]] | None


class Broker:
    """An AMQP 0-9-1 broker with RabbitMQ's semantics.

    ``users``: a mapping of user name to password, or :class:`~kiltmq.broker.auth.User`
    objects (default: ``guest``/``guest``). ``vhosts``: names of the virtual hosts
    (default ``["/"]``). ``permissions``: user -> vhost -> (configure, write, read)
    regexes; by default every user may do everything in every vhost. Users listed in
    ``loopback_users`` (default ``guest``) may connect only from a loopback address.

    ``heartbeat``, ``frame_max`` and ``channel_max`` are proposed in connection.tune.
    ``listeners``: extra (host, port) pairs to listen on besides ``host``/``port``.
    ``memory_limit``: bytes of ready message bodies in memory (not those paged out to the
    store) above which publishers are blocked (connection.blocked) until it falls below 80%
    of the limit, None for no limit; checked every ``memory_check_interval`` seconds.
    ``consumer_timeout``: seconds a delivery may stay unacknowledged before its channel is
    closed with 406 (RabbitMQ's default, 30 minutes); None or 0: never.
    ``max_message_size`` and ``content_timeout``: see :func:`~kiltmq.broker.server.check_limits`.

    ``data_dir``: a directory for durable definitions, users, permissions and persistent
    messages (an :class:`~kiltmq.broker.store.SQLiteStore`; the broker locks it while it
    runs). ``store``: another :class:`~kiltmq.broker.store.Store`. With neither the broker
    is memory-only: nothing survives a restart. On a store that was written before,
    the defaults (the user guest/guest, the vhost ``/``, "everyone may do everything")
    are not applied again: as RabbitMQ's default user and vhost they are for a new store
    only, so that what ``kiltmq ctl`` changed stays changed. Configured users, vhosts and
    permissions are applied at every start.

    ``ctl_socket``: the path of a control socket for ``kiltmq ctl`` (see
    :mod:`kiltmq.broker.control`), or True for the default place (``ctl.sock`` in the
    data directory, else ``kiltmq-<port>.sock`` in the runtime directory; a failure
    there is logged, not raised). None (default): no control socket.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5672,
        *,
        users: UsersArg = None,
        vhosts: Iterable[str] | None = None,
        permissions: PermissionsArg = None,
        heartbeat: int = 60,
        frame_max: int = 131072,
        channel_max: int = 2047,
        loopback_users: Iterable[str] = ("guest",),
        listeners: Iterable[Listener] = (),
        handshake_timeout: float = 10.0,
        memory_limit: int | None = None,
        memory_check_interval: float = 1.0,
        consumer_timeout: float | None = 1800.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        content_timeout: float = 60.0,
        store: Store | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        cluster_name: str = "kiltmq",
        ctl_socket: str | os.PathLike[str] | bool | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.heartbeat = heartbeat
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.handshake_timeout = handshake_timeout
        check_limits(max_message_size, content_timeout)
        self.max_message_size = max_message_size
        self.content_timeout = content_timeout
        self.memory_limit = memory_limit
        self.memory_check_interval = memory_check_interval
        self.consumer_timeout = consumer_timeout or None
        self._ack_check = ConsumerTimeout(lambda: [c.session for c in self.connections])
        self.cluster_name = cluster_name
        self.ctl_socket = ctl_socket
        self._control: ControlServer | None = None
        self._started_at: float | None = None
        # what was configured rather than defaulted (see _recover)
        self._implicit_users = users is None
        self._implicit_vhosts = vhosts is None
        if store is None:
            store = SQLiteStore(data_dir) if data_dir is not None else MemoryStore()
        self.store: Store = store
        self._default_permissions = permissions is None
        self._recovered = False
        self.listeners: list[Listener] = [(host, port), *listeners]
        self.auth = AuthDB(loopback_users)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._passwords: dict[str, str] = {}
        if users is None:
            users = {"guest": "guest"}
        if isinstance(users, Mapping):
            for name, password in users.items():
                self.auth.add_user(User.with_password(name, password))
                self._passwords[name] = password
        else:
            for user in users:
                self.auth.add_user(user)
        #: Users given to the constructor (the default guest too, on a new store).
        self._configured_users = set(self.auth.users)
        self.vhosts: dict[str, VirtualHost] = {}
        for name in vhosts if vhosts is not None else ["/"]:
            self.add_vhost(name)
        if permissions is None:
            for user_name in self.auth.users:
                for vhost_name in self.vhosts:
                    self.auth.set_permission(user_name, vhost_name)
        else:
            for user_name, per_vhost in permissions.items():
                for vhost_name, perm in per_vhost.items():
                    if isinstance(perm, Permission):
                        perm = (perm.configure, perm.write, perm.read)
                    self.auth.set_permission(user_name, vhost_name, *perm)
        self.connections: set[ServerConnection] = set()
        self._servers: list[asyncio.Server] = []
        self._ports: list[int] = []
        self._alarm_timer: asyncio.TimerHandle | None = None
        self._alarm = False
        self._thread = LoopThread("kiltmq-broker")
        self._stopped: asyncio.Event | None = None

    # -- configuration --------------------------------------------------------------------

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name, self.store)
            if self._loop is not None:
                vhost.loop = self._loop
        return vhost

    def delete_vhost(self, name: str) -> bool:
        """Delete a virtual host at run time, as ``rabbitmqctl delete_vhost``: its clients
        get connection.close 320 CONNECTION_FORCED, its queues (with their messages) and
        exchanges go, and so do the permissions for it. False if there was no such vhost.

        Call it on the broker's loop (from another thread: ``call_in_loop``).
        """
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return False
        self._force_close(f"CONNECTION_FORCED - vhost '{name}' is deleted", vhost)
        for queue in list(vhost.queues.values()):
            vhost.delete_queue(queue)
        for user_name, vhost_name in list(self.auth.permissions):
            if vhost_name == name:
                del self.auth.permissions[(user_name, vhost_name)]
        self.store.vhost_removed(name)
        return True

    def set_vhost_limits(self, name: str, limits: str | Mapping[str, Any]) -> None:
        """Replace vhost ``name``'s limits (kept in the store), as ``rabbitmqctl
        set_vhost_limits``; on the broker's loop. KeyError, VhostLimitError."""
        self.vhosts[name].set_limits(parse_limits(limits))

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port of the first listener (the real one once started with port 0)."""
        return self._ports[0] if self._ports else self._port

    @property
    def ports(self) -> list[int]:
        """The ports of every listener, in order (empty until started)."""
        return list(self._ports)

    @property
    def url(self) -> str:
        """An amqp:// URL for the first listener with the default user's credentials."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        credentials = ""
        name = "guest" if "guest" in self._passwords else next(iter(self._passwords), None)
        if name is not None:
            credentials = f"{quote(name, safe='')}:{quote(self._passwords[name], safe='')}@"
        return f"amqp://{credentials}{host}:{self.port}/"

    @property
    def ctl_path(self) -> Path | None:
        """The path of the control socket while it is open, else None."""
        return self._control.path if self._control is not None else None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (raises OSError if an address is unavailable)."""
        if self._servers:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = asyncio.Event()
        for vhost in self.vhosts.values():
            vhost.loop = loop
        if isinstance(self.store, MemoryStore):
            log.info("no data directory: memory-only, nothing survives a restart")
        # a store that cannot write blocks publishers, as RabbitMQ's disk alarm
        self.store.set_alarm_handler(self.set_alarm)
        self.store.open()  # raises StoreError (locked, newer or damaged store)
        try:
            self._recover()
            for host, port in self.listeners:
                server = await loop.create_server(
                    lambda: ServerConnection(self),
                    host=host or None,
                    port=port,
                    reuse_address=True,
                )
                self._servers.append(server)
                self._ports.append(server.sockets[0].getsockname()[1])
                for sock in server.sockets:
                    log.info("listening on %s", sock.getsockname()[:2])
        except BaseException:
            for server in self._servers:
                server.close()
            self._servers.clear()
            self._ports.clear()
            self._stop_timers()
            self.store.close()
            raise
        self._start_timers()
        self._started_at = time.monotonic()
        await self._open_control()
        if self.memory_limit is not None:
            self._alarm_timer = loop.call_later(self.memory_check_interval, self._check_memory)
        self._ack_check.start(loop, self.consumer_timeout)

    async def _open_control(self) -> None:
        option = self.ctl_socket
        if option is None or option is False:
            return
        if option is True:
            data_dir = self.store.data_dir if isinstance(self.store, SQLiteStore) else None
            path = default_socket_path(data_dir, self.port)
        else:
            path = Path(option)
        control = ControlServer(self, path)
        try:
            await control.start()
        except ControlError as exc:
            if option is not True:
                await self.stop()
                raise
            log.warning("%s; kiltmq ctl cannot reach this broker", exc)
            return
        self._control = control

    async def stop(self) -> None:
        """Stop listening, close every connection (320 CONNECTION_FORCED), wait briefly
        for them to go."""
        if not self._servers:
            return
        for server in self._servers:
            server.close()
        control, self._control = self._control, None
        if control is not None:
            await control.stop()
        if self._alarm_timer is not None:
            self._alarm_timer.cancel()
            self._alarm_timer = None
        self._ack_check.stop()
        self._force_close(
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        )
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()
        for server in self._servers:
            await server.wait_closed()
        for _ in range(10):  # let aborted connections release their channels
            if not self.connections:
                break
            await asyncio.sleep(0)
        self._servers.clear()
        self._ports.clear()
        self._stop_timers()
        self._report_redelivered()
        self.store.close()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Start if needed and run until :meth:`stop` is called."""
        await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- running in a thread --------------------------------------------------------------

    def start_in_thread(self) -> None:
        """Run the broker on its own event loop in a daemon thread; returns once it listens
        (raising what :meth:`start` raised)."""
        self._thread.start(self.start)

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop a broker started with :meth:`start_in_thread`."""
        self._thread.stop(self.stop, timeout)

    def call_in_loop(self, function: Any, *args: Any, timeout: float = 10.0) -> Any:
        """Run ``function(*args)`` on the broker's thread and return its result (for code
        outside the loop, e.g. tests inspecting queues)."""
        return self._thread.call(function, *args, timeout=timeout)

    def __enter__(self) -> Broker:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_thread()

    # -- connections ----------------------------------------------------------------------

    def connection_made(self, conn: ServerConnection) -> None:
        """Called by a new :class:`ServerConnection` (not part of the embedding API)."""
        self.connections.add(conn)
        if self._alarm:
            conn.session.set_alarm(True, "low on memory")

    def connection_lost(self, conn: ServerConnection) -> None:
        """Called by a :class:`ServerConnection` whose socket closed."""
        self.connections.discard(conn)

    def _force_close(self, reply_text: str, vhost: VirtualHost | None = None) -> None:
        """Close every connection (to ``vhost`` if given) with 320 CONNECTION_FORCED."""
        for conn in list(self.connections):
            session = conn.session
            if vhost is None or (session is not None and session.vhost is vhost):
                session.connection_error(ConnectionForced(reply_text))

    # -- resource alarm -------------------------------------------------------------------

    #: Estimated memory per queued message besides its body (message and entry objects).
    MESSAGE_OVERHEAD = 400

    def memory_used(self) -> int:
        """Estimated bytes taken by messages waiting in queues (bodies in memory plus a
        fixed overhead per message; bodies paged out to the store do not count)."""
        overhead = self.MESSAGE_OVERHEAD
        return sum(
            q.ready_bytes - q.paged_bytes + overhead * len(q.ready)
            for v in self.vhosts.values()
            for q in v.queues.values()
        )

    @property
    def alarm(self) -> bool:
        """Whether publishers are blocked by the memory limit."""
        return self._alarm

    @property
    def uptime(self) -> float:
        """Seconds since :meth:`start` (0 before)."""
        return time.monotonic() - self._started_at if self._started_at is not None else 0.0

    def default_grantees(self) -> list[str]:
        """The users a vhost created at run time is opened to: on a broker given users but
        no permissions, those users (as at each start); else nobody (as RabbitMQ)."""
        if not self._default_permissions or self._implicit_users:
            return []
        return sorted(u for u in self._configured_users if u in self.auth.users)

    def set_alarm(self, active: bool, reason: str = "low on memory") -> None:
        """Block or unblock publishers on every connection (connection.blocked)."""
        if active == self._alarm:
            return
        self._alarm = active
        log.warning("memory alarm %s", "set" if active else "cleared")
        for conn in list(self.connections):
            conn.session.set_alarm(active, reason)

    def _check_memory(self) -> None:
        limit = self.memory_limit
        if limit is None or self._loop is None:
            return
        used = self.memory_used()
        if used > limit:
            self.set_alarm(True)
        elif used < limit * 0.8:
            self.set_alarm(False)
        self._alarm_timer = self._loop.call_later(self.memory_check_interval, self._check_memory)

    # -- recovery -------------------------------------------------------------------------

    def _recover(self) -> None:
        """Rebuild what the store kept (first start only: a restarted Broker object still
        has it all in memory), then store the configured vhosts, users and permissions.
        Configured users and permissions win over stored ones of the same name."""
        recovered = self.store.recover()
        if not self._recovered:
            self._recovered = True
            auth = self.auth
            if recovered.vhosts or recovered.users:  # a store written before
                # the defaults were applied at its first start; since then the stored
                # users, vhosts and permissions are the truth (kiltmq ctl changes them)
                if self._implicit_users:
                    self._configured_users.clear()
                    auth.users.clear()
                    if self._default_permissions:
                        auth.permissions.clear()
                if self._implicit_vhosts:
                    for name in [n for n in self.vhosts if n not in recovered.vhosts]:
                        del self.vhosts[name]
                        for key in [k for k in auth.permissions if k[1] == name]:
                            del auth.permissions[key]
            for name in recovered.vhosts:
                self.add_vhost(name)
            for user in recovered.users:
                if user.name not in auth.users:
                    auth.add_user(user)
            for user_name, vhost_name, configure, write, read in recovered.permissions:
                if (user_name, vhost_name) not in auth.permissions:
                    auth.set_permission(user_name, vhost_name, configure, write, read)
            for vhost_name, kind, definition in recovered.definitions:
                self.add_vhost(vhost_name).restore(kind, definition)
            for stored in recovered.messages:
                vhost = self.vhosts.get(stored.vhost)
                if vhost is not None:
                    vhost.restore_message(
                        stored.queue, stored.message, stored.redelivered, stored.expires_at
                    )
            if self._default_permissions:
                # no permissions configured: every configured user may do everything
                # everywhere, recovered vhosts included
                for user_name in self._configured_users:
                    for vhost_name in self.vhosts:
                        if (user_name, vhost_name) not in auth.permissions:
                            auth.set_permission(user_name, vhost_name)
        store = self.store
        for name in self.vhosts:
            store.vhost_added(name)
        for user in self.auth.users.values():
            store.user_added(user)
        for (user_name, vhost_name), perm in self.auth.permissions.items():
            store.permission_set(user_name, vhost_name, perm.configure, perm.write, perm.read)

    def _start_timers(self) -> None:
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                queue.start_timers()

    def _stop_timers(self) -> None:
        """No message or queue expires while the broker is stopped (its store closed); a
        new start arms the timers again."""
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                queue.stop_timers()

    def _report_redelivered(self) -> None:
        """At a clean stop (connections closed, their unacknowledged deliveries back in
        their queues): tell the store which persistent messages had been delivered, so
        that exactly these come back redelivered."""
        for vhost in self.vhosts.values():
            for queue in vhost.queues.values():
                if queue.durable:
                    delivered = [
                        e.message for e in queue.ready if e.redelivered and e.message.persistent
                    ]
                    if delivered:
                        self.store.mark_redelivered(vhost.name, queue.name, delivered)
