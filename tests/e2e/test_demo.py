"""``kiltmq demo`` (what ``make demo`` runs): starts the whole store on the embedded
broker, prints the pages' addresses, serves them, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from kiltstore.cli import build_parser, settings_from
from kiltstore.config import SERVICES
from kiltstore.demo import Store

from .conftest import WAIT

#: Every service but the order board's.
SERVICES_BUT_BOARD = frozenset(SERVICES) - {"board"}

GUEST = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


async def test_kiltmq_demo_prints_the_pages_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kiltmq", "demo", "--any-ports", "--amqp-port", "0",
        "--data-dir", str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not lines or "Press Ctrl-C to stop" not in lines[-1]:
            line = await asyncio.wait_for(process.stdout.readline(), WAIT)
            assert line, "the demo exited early:\n" + "".join(lines)
            lines.append(line.decode())
        output = "".join(lines)
        urls = dict(re.findall(r"^  (\S.*?)\s{2,}(\S+)$", output, re.MULTILINE))
        for page in ("web store", "workshop", "CRM", "mailbox", "order board"):
            assert urls[page].startswith("http://127.0.0.1:"), output
        assert urls["AMQP broker"].startswith("amqp://")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as http:
            for page in ("web store", "workshop", "CRM", "mailbox", "order board"):
                async with http.get(urls[page]) as response:
                    assert response.status == 200
            async with http.get(urls["CRM"]) as response:
                assert "Jamie" in await response.text()  # the demo's seeded customers
            # The broker's management UI, and the board's links to each queue's page.
            management = urls["management"]
            assert management.startswith("http://127.0.0.1:"), output
            async with http.get(management + "/api/overview", headers=GUEST) as response:
                assert response.status == 200
            async with http.get(urls["order board"]) as response:
                board = await response.text()
            links = re.findall(r'<a href="([^"]+)">kiltstore\.([^<]+)</a>', board)
            assert (management + "/queues/%2F/kiltstore.billing", "billing") in links, board
            async with http.get(
                management + "/queues/%2F/kiltstore.billing", allow_redirects=False
            ) as response:
                assert response.status == 302
                assert response.headers["Location"].startswith("/login?next=")

        # The embedded broker has a control socket, and the demo says how to use it.
        command = re.search(r"^  (kiltmq ctl --socket \S+ list_queues)$", output, re.MULTILINE)
        assert command is not None, output
        ctl = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kiltmq", *command.group(1).split()[1:],
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        listed = (await asyncio.wait_for(ctl.communicate(), WAIT))[0].decode()
        assert ctl.returncode == 0, listed
        assert "kiltstore.billing" in listed and "kiltstore.dead-letters" in listed

        process.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(process.stdout.read(), WAIT)).decode()
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
        assert rest.rstrip().endswith("Stopped."), rest
        assert "Traceback" not in rest
        # the embedded broker kept its state in the data directory
        assert "carry on\nafter a restart" in output
        assert (tmp_path / "data" / "broker" / "kiltmq.db").exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_kiltmq_demo_without_the_store_extra_says_what_to_install() -> None:
    # aiohttp made unimportable in a child interpreter, as without kiltmq[store]
    code = (
        "import sys; sys.modules['aiohttp'] = None; "
        "from kiltmq.cli.main import main; raise SystemExit(main(['demo']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert "aiohttp is missing" in done.stdout
    assert "pip install 'kiltmq[store]'" in done.stdout


async def board_links(http: aiohttp.ClientSession, store: Store) -> list[tuple[str, str]]:
    async with http.get(store.urls["order board"]) as response:
        board = await response.text()
    return re.findall(rf'<a href="([^"]+)">{re.escape(store.prefix)}\.([^<]+)</a>', board)


async def test_the_board_links_to_the_management_ui_of_an_external_rabbitmq(
    store: Store, http: aiohttp.ClientSession, broker_kind: str
) -> None:
    """On RabbitMQ (``kiltmq demo --amqp-url``) the store finds its management UI at port
    15672 of the broker's host; a broker that isn't RabbitMQ gets no guessed links."""
    if broker_kind == "kiltmq":  # the tests' embedded broker runs no management API
        assert "management" not in store.urls
        assert await board_links(http, store) == []
        return
    management = store.urls["management"]
    assert management == "http://127.0.0.1:15672/#"
    billing = f"{management}/queues/%2F/{store.prefix}.billing"
    assert (billing, "billing") in await board_links(http, store)
    async with http.get(billing) as response:  # RabbitMQ's UI (it routes after the "#")
        assert response.status == 200
        assert "RabbitMQ Management" in await response.text()


async def test_a_management_url_given_is_used_as_is(
    amqp_url: str, prefix: str, tmp_path: Path, cleanup: None, http: aiohttp.ClientSession
) -> None:
    for given, expected in (("http://mgmt.example:8080", "http://mgmt.example:8080"),
                            ("", None)):
        async with Store(data_dir=tmp_path / "data", amqp_url=amqp_url, prefix=prefix,
                         management_url=given, exclude=SERVICES_BUT_BOARD) as store:
            assert store.urls.get("management") == expected
            links = await board_links(http, store)
            assert (f"{given}/queues/%2F/{prefix}.billing", "billing") in links if given else (
                links == [])
    args = build_parser().parse_args(["board", "--management-url", "http://mgmt.example"])
    assert settings_from(args).management_url == "http://mgmt.example"
    demo = build_parser().parse_args(["demo", "--amqp-url", amqp_url, "--management-url", ""])
    assert demo.management_url == ""
