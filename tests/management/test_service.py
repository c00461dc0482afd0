"""Where the management API runs: the embedded broker (off unless asked for), the
command line, the pytest plugin; the broker without aiohttp; alarms in health checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import kiltmq
from kiltmq.broker import Broker

from .api import Api

SRC = str(Path(kiltmq.__file__).resolve().parents[1])
#: Makes ``import aiohttp`` fail, as on a machine without it.
NO_AIOHTTP = "import sys; sys.modules['aiohttp'] = None\n"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
        timeout=60, check=False,
    )


def test_the_embedded_broker_serves_no_api_unless_asked() -> None:
    with Broker(port=0) as broker:
        assert broker.management_url is None
    with Broker(port=0, management_port=0) as broker:
        assert broker.management_url is not None
        assert Api(broker.management_url).get("/api/whoami").body == {
            "name": "guest", "tags": ["administrator"],
        }
    assert broker.management_url is None


def test_the_broker_runs_without_aiohttp() -> None:
    code = NO_AIOHTTP + (
        "import asyncio\n"
        "from kiltmq.broker import Broker\n"
        "from kiltmq.broker.services import ServiceUnavailable\n"
        "async def main():\n"
        "    async with Broker(port=0):\n"
        "        pass\n"
        "    try:\n"
        "        await Broker(port=0, management_port=0).start()\n"
        "    except ServiceUnavailable as exc:\n"
        "        print(exc)\n"
        "asyncio.run(main())\n"
        "print(any(m.startswith('kiltmq.management') for m in sys.modules))\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "the management API needs aiohttp: pip install 'kiltmq[management]'",
        "False",
    ]


def test_the_command_line_says_so_in_one_line_without_aiohttp() -> None:
    code = NO_AIOHTTP + "from kiltmq.cli.main import main; sys.exit(main())"
    result = _python(code, "broker", "--memory-only", "--port", "0", "--no-ctl-socket",
                     "--management-port", "15672", "--log-level", "error")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "kiltmq broker: the management API needs aiohttp: pip install 'kiltmq[management]'"
    ]


def test_the_command_line_names_a_taken_management_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = "import sys; from kiltmq.cli.main import main; sys.exit(main())"
        result = _python(code, "broker", "--memory-only", "--port", "0", "--no-ctl-socket",
                         "--management-port", str(port), "--log-level", "error")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        f"kiltmq broker: cannot listen on 127.0.0.1:{port} for the management API: "
    )


def test_alarms_fail_the_health_checks(kilt_broker: Broker, kilt: Api) -> None:
    kilt_broker.call_in_loop(kilt_broker.set_alarm, True)
    try:
        reply = kilt.get("/api/health/checks/alarms")
        assert reply.status == 503
        assert reply.body == {
            "status": "failed",
            "reason": "There are alarms in effect in the cluster",
            "alarms": [{"node": reply.body["alarms"][0]["node"], "resource": "memory"}],
        }
        assert kilt.get("/api/health/checks/local-alarms").status == 503
    finally:
        kilt_broker.call_in_loop(kilt_broker.set_alarm, False)
    assert kilt.get("/api/health/checks/alarms").body == {"status": "ok"}


def test_guest_only_from_loopback() -> None:
    from kiltmq.management.access import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.2")
    assert not is_loopback("10.1.2.3") and not is_loopback(None) and not is_loopback("x")


def test_guest_is_refused_from_another_address() -> None:
    address = _external_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with Broker(port=0, management_host="0.0.0.0", management_port=0) as broker:
        port = (broker.management_url or "").rsplit(":", 1)[1]
        reply = Api(f"http://{address}:{port}").get("/api/overview")
        assert (reply.status, reply.body) == (
            401, {"error": "not_authorised", "reason": "User can only log in via localhost"},
        )


def _external_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if address.startswith("127.") else address


pytest_plugins = ["pytester"]


def test_the_pytest_plugin_hands_out_the_management_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import json, urllib.request, base64

        def test_api(amqp_management_url, amqp_broker):
            request = urllib.request.Request(amqp_management_url + "/api/vhosts")
            token = base64.b64encode(b"guest:guest").decode()
            request.add_header("Authorization", "Basic " + token)
            names = [v["name"] for v in json.load(urllib.request.urlopen(request))]
            assert amqp_broker.vhost in names
        """
    )
    result = pytester.runpytest_subprocess("--kiltmq-management", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*serves no management API*"])


def test_changes_made_through_the_api_survive_a_restart(tmp_path: Path) -> None:
    def broker() -> Broker:
        return Broker(port=0, management_port=0, data_dir=tmp_path / "data")

    with broker() as first:
        api = Api(first.management_url or "")
        assert api.put("/api/vhosts/kept").status == 201
        assert api.put("/api/users/keeper", {"password": "pw", "tags": "monitoring"}).status == 201
        perm = {"configure": ".*", "write": ".*", "read": ".*"}
        assert api.put("/api/permissions/kept/keeper", perm).status == 201
        assert api.put("/api/queues/kept/box", {"durable": True}).status == 201
        fanout = {"type": "fanout", "durable": True}
        assert api.put("/api/exchanges/kept/post", fanout).status == 201
        assert api.post("/api/bindings/kept/e/post/q/box", {"routing_key": ""}).status == 201
        published = api.post("/api/exchanges/kept/post/publish", {
            "properties": {"delivery_mode": 2}, "routing_key": "", "payload": "kept",
            "payload_encoding": "string",
        })
        assert published.body == {"routed": True}
    with broker() as second:
        api = Api(second.management_url or "").as_user("keeper", "pw")
        assert api.get("/api/whoami").body == {"name": "keeper", "tags": ["monitoring"]}
        assert api.get("/api/queues/kept/box").body["messages"] == 1
        bindings = api.get("/api/queues/kept/box/bindings").body
        assert [(b["source"], b["destination"]) for b in bindings] == [
            ("", "box"), ("post", "box"),
        ]


def test_ctl_sets_user_tags_for_the_api(tmp_path: Path) -> None:
    socket_path = tmp_path / "ctl.sock"
    with Broker(port=0, management_port=0, ctl_socket=socket_path) as broker:
        api = Api(broker.management_url or "")
        assert api.put("/api/users/ops", {"password": "pw", "tags": ""}).status == 201
        ops = api.as_user("ops", "pw")
        assert ops.get("/api/whoami").status == 401
        code = "import sys; from kiltmq.cli.main import main; sys.exit(main())"
        result = _python(code, "ctl", "--socket", str(socket_path), "set_user_tags", "ops",
                         "monitoring", "management")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "tags of user 'ops' set to [monitoring, management]"
        assert ops.get("/api/whoami").body == {"name": "ops", "tags": ["management", "monitoring"]}
        result = _python(code, "ctl", "--socket", str(socket_path), "set_user_tags", "nobody")
        assert result.returncode != 0
        assert result.stderr.strip() == "kiltmq ctl: no such user 'nobody'"


def _free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    return ports


@pytest.mark.parametrize("where", ["options", "config file"])
def test_the_command_line_serves_the_api_and_the_metrics(where: str, tmp_path: Path) -> None:
    ports = _free_ports(2)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    if where == "options":
        chosen = ["--management-port", str(ports[0]), "--prometheus-port", str(ports[1])]
    else:
        config = tmp_path / "kiltmq.toml"
        config.write_text(
            f'management_host = "127.0.0.1"\nmanagement_port = {ports[0]}\n'
            f"prometheus_port = {ports[1]}\n"
        )
        chosen = ["--config", str(config)]
    process = subprocess.Popen(
        [sys.executable, "-m", "kiltmq", "broker", "--port", "0", "--memory-only",
         "--no-ctl-socket", *chosen],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "Prometheus metrics on" in line:
                break
        assert any(f"management API on http://127.0.0.1:{ports[0]}" in x for x in lines), lines
        api = Api(f"http://127.0.0.1:{ports[0]}")
        assert api.get("/api/whoami").body == {"name": "guest", "tags": ["administrator"]}
        metrics = Api(f"http://127.0.0.1:{ports[1]}").get("/metrics", auth=False)
        assert metrics.status == 200 and "rabbitmq_queues 0" in metrics.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0


def test_the_config_file_turns_the_api_off_and_options_win(tmp_path: Path) -> None:
    config = tmp_path / "kiltmq.json"
    config.write_text('{"management_port": 0, "prometheus_port": 0}')
    (port,) = _free_ports(1)
    code = (
        "import sys\n"
        "from kiltmq.cli.main import main\n"
        "class Stop(Exception): pass\n"
        "def seen(*args, **kwargs):\n"
        "    print(sorted(k for k in kwargs if 'port' in k or 'host' in k), "
        "kwargs.get('management_port'), kwargs.get('optional_services'))\n"
        "    raise Stop\n"
        "import kiltmq.broker\n"
        "kiltmq.broker.Broker = seen\n"
        "try:\n"
        "    main()\n"
        "except Stop:\n"
        "    pass\n"
    )
    off = _python(code, "broker", "--memory-only", "--config", str(config))
    assert off.stdout.strip() == "[] None []", off.stderr
    chosen = _python(code, "broker", "--memory-only", "--config", str(config),
                     "--management-port", str(port))
    assert chosen.stdout.strip() == f"['management_host', 'management_port'] {port} []"
    config.write_text('{"management_port": 70000}')
    bad = _python(code, "broker", "--memory-only", "--config", str(config))
    assert bad.stderr.strip() == "kiltmq broker: invalid management_port 70000"
