"""The embeddable broker: configuration, virtual hosts, users, listeners and lifecycle.

::

    async with Broker(port=0) as broker:        # port 0 picks a free port
        connect_somehow(broker.url)              # amqp://guest:guest@127.0.0.1:<port>/

    with Broker(port=0) as broker:               # from synchronous code: runs its own
        pika.BlockingConnection(pika.URLParameters(broker.url))   # loop in a thread

Everything runs on one asyncio event loop; the broker's objects must only be touched
from it (``start_in_thread`` runs that loop in a daemon thread). Its addresses, its
recovery from the store and its resource alarms are mixins
(:mod:`~kiltmq.broker.addresses`, :mod:`~kiltmq.broker.recovery`,
:mod:`~kiltmq.broker.resource_alarms`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kiltmq.broker.addresses import BrokerAddresses, Listener
from kiltmq.broker.admin import Admin, AdminError
from kiltmq.broker.alarm import STORE, Alarms
from kiltmq.broker.auth import AuthDB, Permission, User
from kiltmq.broker.churn import Churn
from kiltmq.broker.clock import Clock
from kiltmq.broker.consumer_timeout import ConsumerTimeout
from kiltmq.broker.control import ControlError, ControlServer, default_socket_path
from kiltmq.broker.disk import DEFAULT_DISK_FREE_LIMIT, parse_disk_free_limit
from kiltmq.broker.endpoint import Endpoint
from kiltmq.broker.loop_thread import LoopThread
from kiltmq.broker.memory import parse_memory_limit
from kiltmq.broker.queue import Queue
from kiltmq.broker.recovery import BrokerRecovery
from kiltmq.broker.resource_alarms import ResourceAlarms
from kiltmq.broker.resource_monitor import ResourceMonitor
from kiltmq.broker.server import DEFAULT_MAX_MESSAGE_SIZE, ServerConnection, check_limits
from kiltmq.broker.services import Service, start_services
from kiltmq.broker.shovel import Shovels
from kiltmq.broker.store import MemoryStore, SQLiteStore, Store
from kiltmq.broker.tls import TLSSettings
from kiltmq.broker.user_limits import UserUsage
from kiltmq.broker.vhost import VirtualHost
from kiltmq.broker.vhost_limits import parse_limits
from kiltmq.protocol.errors import ConnectionForced

__all__ = ["Broker", "Listener"]

log = logging.getLogger("kiltmq.broker")

UsersArg = Mapping[str, str] | Iterable[User] | None
PermissionsArg = Mapping[str, Mapping[str, "tuple[str, str, str] | Permission"]] | None


class Broker(BrokerAddresses, BrokerRecovery, ResourceAlarms):
    """An AMQP 0-9-1 broker with RabbitMQ's semantics.

    ``users``: a mapping of user name to password, or :class:`~kiltmq.broker.auth.User`
    objects (default: ``guest``/``guest``). ``vhosts``: names of the virtual hosts
    (default ``["/"]``). ``permissions``: user -> vhost -> (configure, write, read)
    regexes; by default every user may do everything in every vhost. Users listed in
    ``loopback_users`` (default ``guest``) may connect only from a loopback address.

    ``heartbeat``, ``frame_max`` and ``channel_max`` are proposed in connection.tune.
    ``listeners``: extra (host, port) pairs to listen on besides ``host``/``port``.
    ``memory_limit`` (bytes, "200MB" or a fraction such as 0.4; None: no limit) and
    ``disk_free_limit`` (default "50MB"): the resource alarms (docs/broker.md), checked
    every ``memory_check_interval`` seconds.
    ``consumer_timeout``: seconds a delivery may stay unacknowledged before its channel is
    closed with 406 (RabbitMQ's default, 30 minutes); None or 0: never.
    ``max_message_size`` and ``content_timeout``: see :func:`~kiltmq.broker.server.check_limits`.
    ``max_connections``: RabbitMQ's ``connection_max``, per listener (None: no limit);
    see :mod:`kiltmq.broker.endpoint`.

    ``tls_cert`` (and ``tls_key``) adds an amqps listener on ``host``:``tls_port``
    (default 5671); ``tls_ca``, ``tls_verify`` and ``tls_login_from`` (client certificates,
    SASL EXTERNAL): see :class:`~kiltmq.broker.tls.TLSSettings`.

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

    ``load_definitions``: a JSON file of definitions (RabbitMQ's export format) loaded at
    every start, after what the store kept (AdminError if it cannot be).

    ``management_port``: serve RabbitMQ's management HTTP API on ``management_host``
    (0: a free port; see :attr:`management_url`); None (default): no management API. It
    needs aiohttp (``kiltmq[management]``): without it, :meth:`start` raises
    :class:`~kiltmq.broker.services.ServiceUnavailable`. ``prometheus_port``: the same for
    Prometheus metrics (RabbitMQ's ``/metrics``), on ``management_host`` too.
    ``optional_services``: of ``"management"`` and ``"prometheus"``, those that, if they
    cannot start (the port is taken, aiohttp is missing), are logged as a warning and left
    out (``kiltmq broker``'s default ports) instead of failing :meth:`start`.

    ``clock``: the :class:`~kiltmq.broker.clock.Clock` its timing code follows (TTLs,
    expiry, timeouts, heartbeats); default the event loop's.
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
        memory_limit: int | float | str | None = None,
        disk_free_limit: int | str | None = DEFAULT_DISK_FREE_LIMIT,
        memory_check_interval: float = 1.0,
        consumer_timeout: float | None = 1800.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        content_timeout: float = 60.0,
        store: Store | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        cluster_name: str = "kiltmq",
        ctl_socket: str | os.PathLike[str] | bool | None = None,
        max_connections: int | None = None,
        tls_port: int | None = None,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        tls_verify: str | None = None,
        tls_login_from: str = "distinguished_name",
        load_definitions: str | os.PathLike[str] | None = None,
        management_host: str = "127.0.0.1",
        management_port: int | None = None,
        prometheus_port: int | None = None,
        optional_services: Iterable[str] = (),
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self._port = port
        #: What TTLs, expiry, timeouts and heartbeats follow.
        self.clock = clock if clock is not None else Clock()
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 (None: no limit)")
        self.max_connections = max_connections
        self.tls = TLSSettings.from_options(tls_cert, tls_key, tls_ca, tls_verify, tls_login_from)
        self._tls_context = self.tls.context() if self.tls is not None else None
        if self.tls is None and tls_port is not None:
            raise ValueError("a TLS port needs a certificate (tls_cert)")
        #: The amqps listeners (host, port), when TLS is configured.
        self.tls_listeners: list[Listener] = (
            [(host, 5671 if tls_port is None else tls_port)] if self.tls is not None else []
        )
        self.heartbeat = heartbeat
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.handshake_timeout = handshake_timeout
        check_limits(max_message_size, content_timeout)
        self.max_message_size = max_message_size
        self.content_timeout = content_timeout
        self.memory_limit = None if memory_limit is None else parse_memory_limit(memory_limit)
        self.memory_limit = self.memory_limit or None
        self.disk_free_limit = (
            None if disk_free_limit is None else parse_disk_free_limit(disk_free_limit) or None
        )
        self.memory_check_interval = memory_check_interval
        self.consumer_timeout = consumer_timeout or None
        self._ack_check = ConsumerTimeout(
            self.clock, lambda: [c.session for c in self.connections]
        )
        self.cluster_name = cluster_name
        self.ctl_socket = ctl_socket
        self.load_definitions = load_definitions
        self._control: ControlServer | None = None
        self.management_host = management_host
        self.management_port = management_port
        self.prometheus_port = prometheus_port
        self.optional_services = frozenset(optional_services)
        self._services: dict[str, Service] = {}
        self._started_at: float | None = None
        # what was configured rather than defaulted (see _recover)
        self._implicit_users = users is None
        self._implicit_vhosts = vhosts is None
        if store is None:
            store = SQLiteStore(data_dir) if data_dir is not None else MemoryStore()
        self.store: Store = store
        #: Dynamic shovels moving messages between queues (kept in the store).
        self.shovels = Shovels(store)
        self._default_permissions = permissions is None
        self._recovered = False
        self.listeners: list[Listener] = [(host, port), *listeners]
        self.auth = AuthDB(loopback_users)
        #: Open connections and channels per user (for the users' limits).
        self.user_usage = UserUsage()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._passwords: dict[str, str] = {}
        if users is None:  # RabbitMQ's default user, an administrator
            users = {"guest": "guest"}
        if isinstance(users, Mapping):
            for name, password in users.items():
                tags = ("administrator",) if self._implicit_users else ()
                self.auth.add_user(User.with_password(name, password, tags))
                self._passwords[name] = password
        else:
            for user in users:
                self.auth.add_user(user)
        #: Users given to the constructor (the default guest too, on a new store).
        self._configured_users = set(self.auth.users)
        self.vhosts: dict[str, VirtualHost] = {}
        #: Connections, channels and queues made and gone (RabbitMQ's churn_rates).
        self.churn = Churn()
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
        self._tls_ports: list[int] = []
        #: The listeners while started, with their connection counts.
        self.endpoints: list[Endpoint] = []
        self._alarms = Alarms(self._alarms_changed)
        self._monitor = ResourceMonitor(self)
        self._thread = LoopThread("kiltmq-broker")
        self._stopped: asyncio.Event | None = None

    # -- configuration --------------------------------------------------------------------

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VirtualHost(name, self.store, self.clock)
            vhost.churn = self.churn
        return vhost

    def delete_vhost(self, name: str) -> bool:
        """Delete a virtual host at run time, as ``rabbitmqctl delete_vhost``: its clients
        get connection.close 320 CONNECTION_FORCED, its queues (with their messages) and
        exchanges go, and so do the permissions and topic permissions for it. False if
        there was no such vhost.

        Call it on the broker's loop (from another thread: ``call_in_loop``).
        """
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return False
        self._force_close(f"CONNECTION_FORCED - vhost '{name}' is deleted", vhost)
        for queue in list(vhost.queues.values()):
            vhost.delete_queue(queue)
        self.shovels.forget_vhost(name)
        self.auth.remove_vhost(name)
        self.store.vhost_removed(name)
        return True

    def set_vhost_limits(self, name: str, limits: str | Mapping[str, Any]) -> None:
        """Replace vhost ``name``'s limits (kept in the store), as ``rabbitmqctl
        set_vhost_limits``; on the broker's loop. KeyError, VhostLimitError."""
        self.vhosts[name].set_limits(parse_limits(limits))

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (raises OSError if an address is unavailable)."""
        if self._servers:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = asyncio.Event()
        self.clock.attach(loop)
        if isinstance(self.store, MemoryStore):
            log.info("no data directory: memory-only, nothing survives a restart")
        # a store that cannot write blocks publishers, as RabbitMQ's disk alarm
        self.store.set_alarm_handler(lambda on, detail: self.set_alarm(STORE, on, detail))
        self.store.open()  # raises StoreError (locked, newer or damaged store)
        try:
            self._recover()
            limit = self.max_connections
            if self.load_definitions is not None:
                self._load_definitions(self.load_definitions)
            for host, port in self.listeners:
                await self._listen(Endpoint(host, port, max_connections=limit))
            for host, port in self.tls_listeners:
                assert self.tls is not None
                login_from = self.tls.external_login_from
                tls = Endpoint(host, port, self._tls_context, login_from=login_from)
                tls.max_connections = limit
                await self._listen(tls)
        except BaseException:
            for server in self._servers:
                server.close()
            self._servers.clear()
            self.endpoints.clear()
            self._ports.clear()
            self._tls_ports.clear()
            self._stop_timers()
            self.store.close()
            raise
        self._start_timers()
        self.shovels.resume(self._find_queue)
        self._started_at = time.monotonic()
        await self._open_control()
        try:
            self._services = await start_services(
                self,
                self.management_host,
                {"management": self.management_port, "prometheus": self.prometheus_port},
                self.optional_services,
            )
        except BaseException:
            await self.stop()
            raise
        self._monitor.start(loop, self.memory_check_interval)
        self._ack_check.start(self.consumer_timeout)

    async def _listen(self, endpoint: Endpoint) -> None:
        assert self._loop is not None
        server = await self._loop.create_server(
            lambda: ServerConnection(self, endpoint),
            host=endpoint.host or None,
            port=endpoint.port,
            reuse_address=True,
        )
        self._servers.append(server)
        self.endpoints.append(endpoint)
        endpoint.port = server.sockets[0].getsockname()[1]
        (self._ports if endpoint.tls is None else self._tls_ports).append(endpoint.port)
        for sock in server.sockets:
            log.info("listening on %s%s", sock.getsockname()[:2], " (TLS)" if endpoint.tls else "")

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
        services, self._services = self._services, {}
        for service in reversed(services.values()):
            await service.stop()
        for server in self._servers:
            server.close()
        control, self._control = self._control, None
        if control is not None:
            await control.stop()
        self._monitor.stop()
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
        self.endpoints.clear()
        self._ports.clear()
        self._tls_ports.clear()
        self._stop_timers()
        self.shovels.pause()
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
        self.churn.connection_created += 1
        if self._alarms:
            conn.session.set_alarm(self._alarms.reason)

    def connection_lost(self, conn: ServerConnection) -> None:
        """Called by a :class:`ServerConnection` whose socket closed."""
        if conn in self.connections:
            self.connections.discard(conn)
            self.churn.connection_closed += 1

    def _force_close(self, reply_text: str, vhost: VirtualHost | None = None) -> None:
        """Close every connection (to ``vhost`` if given) with 320 CONNECTION_FORCED."""
        for conn in list(self.connections):
            session = conn.session
            if vhost is None or (session is not None and session.vhost is vhost):
                session.connection_error(ConnectionForced(reply_text))

    # -- status ---------------------------------------------------------------------------

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

    # -- starting and stopping ------------------------------------------------------------

    def _load_definitions(self, path: str | os.PathLike[str]) -> None:
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
        except OSError as exc:
            raise AdminError(f"cannot read definitions {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise AdminError(f"definitions {path} are not JSON: {exc}") from None
        try:
            Admin(self).import_definitions(data)
        except AdminError as exc:
            raise AdminError(f"cannot load definitions {path}: {exc}") from None

    def _find_queue(self, vhost: str, name: str) -> Queue | None:
        host = self.vhosts.get(vhost)
        return None if host is None else host.queues.get(name)

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
