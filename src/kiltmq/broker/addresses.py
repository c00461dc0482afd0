"""Where a broker can be reached: the ports of its listeners (the real ones once started
with port 0), its amqp:// and amqps:// URLs with the default user's credentials, and
the URLs of its management API, its Prometheus metrics and its control socket."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from kiltmq.broker.control import ControlServer
from kiltmq.broker.services import Service

__all__ = ["BrokerAddresses", "Listener"]

#: A listener's (host, port).
Listener = tuple[str, int]


class BrokerAddresses:
    """The addresses part of :class:`~kiltmq.broker.Broker` (a mixin: the attributes
    below are the broker's)."""

    host: str
    _port: int
    _ports: list[int]
    _tls_ports: list[int]
    tls_listeners: list[Listener]
    _passwords: dict[str, str]
    _services: dict[str, Service]
    _control: ControlServer | None


    @property
    def port(self) -> int:
        """The port of the first listener (the real one once started with port 0)."""
        return self._ports[0] if self._ports else self._port

    @property
    def ports(self) -> list[int]:
        """The ports of every listener, in order (empty until started)."""
        return list(self._ports)

    @property
    def tls_port(self) -> int | None:
        """The port of the amqps listener (the real one once started), None without TLS."""
        if self._tls_ports:
            return self._tls_ports[0]
        return self.tls_listeners[0][1] if self.tls_listeners else None

    @property
    def url(self) -> str:
        """An amqp:// URL for the first listener with the default user's credentials."""
        return f"amqp://{self._url_authority()}:{self.port}/"

    @property
    def amqps_url(self) -> str | None:
        """An amqps:// URL for the TLS listener with the default user's credentials (add
        ``?cacertfile=...``, or use a host name the certificate names); None without TLS."""
        port = self.tls_port
        return None if port is None else f"amqps://{self._url_authority()}:{port}/"

    def _url_authority(self) -> str:
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
        return f"{credentials}{host}"

    @property
    def management_url(self) -> str | None:
        """The management API's base URL (``http://host:port``) while it runs, else
        None."""
        service = self._services.get("management")
        return service.url if service is not None else None

    @property
    def prometheus_url(self) -> str | None:
        """The Prometheus metrics' base URL while they are served, else None."""
        service = self._services.get("prometheus")
        return service.url if service is not None else None

    @property
    def ctl_path(self) -> Path | None:
        """The path of the control socket while it is open, else None."""
        return self._control.path if self._control is not None else None
