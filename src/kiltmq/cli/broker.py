"""``kiltmq broker``: run the broker in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from typing import Any

from kiltmq.cli.main import SubParsers

DESCRIPTION = """\
Run an AMQP 0-9-1 broker with RabbitMQ's semantics in the foreground.

By default it listens on 127.0.0.1:5672 only; use --host 0.0.0.0 (all IPv4 addresses)
or --host :: (all IPv6 addresses, and IPv4 too where the system maps them) to accept
connections from other machines. The default user guest/guest may only connect from
loopback. Stop it with Ctrl-C or SIGTERM; clients get connection.close 320.

Durable exchanges, queues and bindings, vhosts, users, permissions and persistent messages
in durable queues are kept in --data-dir (default $XDG_DATA_HOME/kiltmq, or
~/.local/share/kiltmq), which the broker locks while it runs. --memory-only keeps nothing.

--tls-cert (and --tls-key) adds an amqps listener on --tls-port (default 5671) next to
the plain one; with --tls-ca clients may log in with SASL EXTERNAL as the user their
certificate names.

`kiltmq ctl` administers the running broker through a control socket only its OS user can
use: ctl.sock in the data directory, or for --memory-only kiltmq-<port>.sock in
$XDG_RUNTIME_DIR (else the temporary directory); --ctl-socket puts it elsewhere.

RabbitMQ's management HTTP API (rabbitmqadmin, monitoring, health checks) is served on
127.0.0.1:15672 and Prometheus metrics on 127.0.0.1:15692/metrics (--management-port 0
and --prometheus-port 0 turn them off); they need aiohttp (kiltmq[management]). When a
default port is taken (a RabbitMQ on the same machine) or aiohttp is missing, the broker
warns and runs without them; a port given on the command line must work.
"""


def add_parser(subparsers: SubParsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "broker",
        help="run an AMQP 0-9-1 broker",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all addresses)",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default 5672; 0: any free)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="directory for durable definitions and persistent messages "
        "(default $XDG_DATA_HOME/kiltmq or ~/.local/share/kiltmq)",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="keep nothing on disk: nothing survives a restart",
    )
    parser.add_argument(
        "--page-messages",
        type=int,
        default=None,
        metavar="N",
        help="a durable queue keeps the bodies of at most about N ready persistent messages "
        "in memory, the rest stay on disk until needed (default 10000)",
    )
    parser.add_argument(
        "--page-bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help="... or about this many bytes of them (default 64 MiB)",
    )
    parser.add_argument(
        "--memory-limit",
        default=None,
        metavar="LIMIT",
        help="block publishers (connection.blocked) while messages take more memory than "
        "this: bytes, a size such as 200MB or 1GiB, or a fraction of the machine's memory "
        "such as 0.4 (default 0.4, as RabbitMQ's vm_memory_high_watermark; 0: never)",
    )
    parser.add_argument(
        "--disk-free-limit",
        default=None,
        metavar="SIZE",
        help="block publishers while the data directory's filesystem has less free space "
        "than this: bytes or a size such as 50MB (default 50MB, as RabbitMQ; 0: never)",
    )
    parser.add_argument(
        "--consumer-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close a channel (406) whose delivery stays unacknowledged longer than this "
        "(default 1800, as RabbitMQ; 0: never)",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="refuse larger messages (channel.close 406) when their content header "
        "arrives (default 134217728 = 128 MiB, at most 512 MiB, as RabbitMQ)",
    )
    parser.add_argument(
        "--content-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close a connection whose half-sent message gets no body frame for this long "
        "(default 60; 0: never)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        metavar="N",
        help="serve at most N connections per listener; more wait, unanswered, until one "
        "closes (RabbitMQ's connection_max; default: no limit)",
    )
    tls = parser.add_argument_group("TLS (amqps)")
    tls.add_argument(
        "--tls-cert",
        default=None,
        metavar="FILE",
        help="PEM certificate (chain) of the broker: adds an amqps listener",
    )
    tls.add_argument(
        "--tls-key",
        default=None,
        metavar="FILE",
        help="PEM private key (default: in the --tls-cert file)",
    )
    tls.add_argument(
        "--tls-port",
        type=int,
        default=None,
        help="port of the amqps listener, on --host (default 5671; 0: any free)",
    )
    tls.add_argument(
        "--tls-ca",
        default=None,
        metavar="FILE",
        help="PEM CA certificates that client certificates must chain to",
    )
    tls.add_argument(
        "--tls-verify",
        choices=["none", "optional", "required"],
        default=None,
        help="ask clients for a certificate: none, optional (verified if sent) or "
        "required (default: optional with --tls-ca, else none)",
    )
    tls.add_argument(
        "--tls-login-from",
        choices=["distinguished_name", "common_name"],
        default=None,
        help="the part of a client certificate that is the user name for SASL EXTERNAL "
        "(default distinguished_name, as RabbitMQ)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="JSON or TOML file with users, vhosts, permissions, listeners and limits",
    )
    parser.add_argument(
        "--load-definitions",
        default=None,
        metavar="FILE",
        help="load definitions (RabbitMQ's JSON export: users, vhosts, policies, queues, "
        "...) at start",
    )
    ctl = parser.add_mutually_exclusive_group()
    ctl.add_argument(
        "--ctl-socket",
        default=None,
        metavar="PATH",
        help="control socket for kiltmq ctl (default: DATA_DIR/ctl.sock, or with "
        "--memory-only kiltmq-PORT.sock in $XDG_RUNTIME_DIR or the temporary directory)",
    )
    ctl.add_argument(
        "--no-ctl-socket",
        action="store_true",
        help="open no control socket (kiltmq ctl cannot reach this broker)",
    )
    parser.add_argument(
        "--management-host",
        default=None,
        help="address of the management HTTP API (default 127.0.0.1)",
    )
    parser.add_argument(
        "--management-port",
        type=int,
        default=None,
        metavar="PORT",
        help="port of the management HTTP API (default 15672; 0: no management API)",
    )
    parser.add_argument(
        "--prometheus-port",
        type=int,
        default=None,
        metavar="PORT",
        help="port of the Prometheus metrics, on the management host (default 15692; 0: none)",
    )
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument(
        "--uvloop",
        action="store_true",
        default=None,
        help="run on uvloop, and fail if it is not installed (default: uvloop when it is "
        "installed, e.g. with kiltmq[fast], unless KILTMQ_UVLOOP=0)",
    )
    loop.add_argument(
        "--no-uvloop",
        action="store_false",
        dest="uvloop",
        help="run on asyncio's own event loop even if uvloop is installed",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging level on stderr (default info)",
    )
    return parser


#: The default memory limit: this fraction of the machine's memory, as RabbitMQ's.
DEFAULT_MEMORY_FRACTION = 0.4


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _fail(message: str) -> int:
    print(f"kiltmq broker: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    from kiltmq.broker import Broker
    from kiltmq.broker.config import ConfigError, load_config
    from kiltmq.broker.store import SQLiteStore, default_data_dir

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    kwargs: dict[str, Any] = {}
    if args.config:
        try:
            kwargs = load_config(args.config)
        except ConfigError as exc:
            return _fail(str(exc))
    listeners: list[tuple[str, int]] = kwargs.pop("listeners", [])
    if args.host is not None or args.port is not None or not listeners:
        host = args.host if args.host is not None else "127.0.0.1"
        port = args.port if args.port is not None else 5672
        listeners = [(host, port)]
    if args.memory_only:
        if args.data_dir:
            return _fail("--memory-only and --data-dir exclude each other")
    else:
        store = SQLiteStore(args.data_dir or default_data_dir())
        for option in ("page_messages", "page_bytes"):
            value = getattr(args, option)
            if value is not None:
                if value < 1:
                    return _fail(f"--{option.replace('_', '-')} must be at least 1")
                setattr(store, option, value)
        kwargs["store"] = store
    if args.port is not None and not 0 <= args.port < 65536:
        return _fail(f"invalid port {args.port}")
    from kiltmq.broker.disk import parse_disk_free_limit
    from kiltmq.broker.memory import parse_memory_limit, total_memory

    for option, parse in (
        ("memory_limit", parse_memory_limit),
        ("disk_free_limit", parse_disk_free_limit),
    ):
        value = getattr(args, option)
        if value is not None:
            try:
                kwargs[option] = parse(value) or None
            except ValueError as exc:
                return _fail(f"--{option.replace('_', '-')}: {exc}")
    if "memory_limit" not in kwargs:
        total = total_memory()  # RabbitMQ's default high watermark: 40% of it
        kwargs["memory_limit"] = int(total * DEFAULT_MEMORY_FRACTION) if total else None
    if args.consumer_timeout is not None:
        if args.consumer_timeout < 0:
            return _fail("--consumer-timeout must not be negative")
        kwargs["consumer_timeout"] = args.consumer_timeout or None
    for option in ("max_message_size", "content_timeout", "max_connections"):
        if getattr(args, option) is not None:  # the Broker checks them
            kwargs[option] = getattr(args, option)
    for option in ("port", "cert", "key", "ca", "verify", "login_from"):
        value = getattr(args, f"tls_{option}")
        if value is not None:
            kwargs[f"tls_{option}"] = value
    if args.tls_port is not None and not 0 <= args.tls_port < 65536:
        return _fail(f"invalid TLS port {args.tls_port}")
    if args.load_definitions:
        kwargs["load_definitions"] = args.load_definitions
    optional = []
    configured = {s: kwargs.pop(f"{s}_port", None) for s in ("management", "prometheus")}
    management_host = args.management_host or kwargs.pop("management_host", "127.0.0.1")
    kwargs.pop("management_host", None)
    for service, default in (("management", 15672), ("prometheus", 15692)):
        port = getattr(args, f"{service}_port")
        if port is None:  # the configuration file's, else the default
            port = configured[service]
        if port is None:  # the default: left out with a warning if it cannot start
            port = default
            optional.append(service)
        if not 0 <= port < 65536:
            return _fail(f"invalid --{service}-port {port}")
        if port:
            kwargs["management_host"] = management_host
            kwargs[f"{service}_port"] = port
    kwargs["optional_services"] = optional
    if not args.no_ctl_socket:
        kwargs["ctl_socket"] = args.ctl_socket or True
    try:
        broker = Broker(listeners[0][0], listeners[0][1], listeners=listeners[1:], **kwargs)
    except (re.error, ValueError, TypeError) as exc:
        return _fail(f"invalid configuration: {exc}")
    from kiltmq import event_loop

    try:
        factory = event_loop.loop_factory(args.uvloop)
    except (RuntimeError, ValueError) as exc:
        return _fail(str(exc))
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_serve(broker))


async def _serve(broker: Any) -> int:
    loop = asyncio.get_running_loop()
    from kiltmq.broker.admin import AdminError
    from kiltmq.broker.control import ControlError
    from kiltmq.broker.services import ServiceError
    from kiltmq.broker.store import StoreError

    try:
        await broker.start()
    except (StoreError, ControlError, AdminError, ServiceError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        where = ", ".join(_address(h, p) for h, p in [*broker.listeners, *broker.tls_listeners])
        return _fail(f"cannot listen on {where}: {exc.strerror or exc}")
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    from kiltmq.broker.heap import freeze_start_up
    from kiltmq.event_loop import loop_name

    frozen = freeze_start_up()

    logging.getLogger("kiltmq.broker").info("event loop: %s", loop_name(loop))
    logging.getLogger("kiltmq.broker").info(
        "%d start-up objects exempt from garbage collection", frozen
    )
    hosts = [host for host, _ in broker.listeners]
    addresses = ", ".join(_address(h, p) for h, p in zip(hosts, broker.ports, strict=True))
    if broker.tls_port is not None:
        addresses += f", {_address(broker.tls_listeners[0][0], broker.tls_port)} (amqps)"
    logging.getLogger("kiltmq.broker").info("kiltmq broker ready on %s", addresses)
    if broker.management_url is not None:
        logging.getLogger("kiltmq.broker").info("management API on %s", broker.management_url)
    if broker.prometheus_url is not None:
        logging.getLogger("kiltmq.broker").info(
            "Prometheus metrics on %s/metrics", broker.prometheus_url
        )
    await stop.wait()
    logging.getLogger("kiltmq.broker").info("shutting down")
    await broker.stop()
    return 0
