"""The management web UI in a real browser (Playwright driving Debian's chromium):
every page loads without a console error, the pages publish, get, purge, move and
create policies through the HTTP API, tags decide what a user sees and may do, and a
state-changing request without the session's CSRF token is refused.

With KILTSTORE_SCREENSHOTS=docs/screenshots the pictures of docs/management.md are
refreshed (``make screenshots``). Needs /usr/bin/chromium, as tests/e2e/test_browser.py.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pika
import pytest
from tests.e2e.test_browser import BROWSER_TIMEOUT_MS

from kiltmq.broker import Broker

from .api import Api
from .conftest import TIMING

SCREENSHOTS_ENV = "KILTSTORE_SCREENSHOTS"
TIMEOUT_MS = BROWSER_TIMEOUT_MS


@pytest.fixture
def broker() -> Iterator[Broker]:
    with Broker(port=0, management_port=0) as running:
        yield running


@pytest.fixture
def api(broker: Broker) -> Api:
    assert broker.management_url is not None
    return Api(broker.management_url)


class Page:
    """A browser page that records console errors and failed requests."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def goto(self, path: str) -> Any:
        return await self.page.goto(self.base + path)

    async def login(self, user: str = "guest", password: str = "guest") -> None:
        await self.goto("/")
        await self.page.fill("input[name=username]", user)
        await self.page.fill("input[name=password]", password)
        await self.page.click("button[type=submit]")
        await self.page.wait_for_selector("header.top")


async def open_page(browser: Any, broker: Broker, user: str = "guest") -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    assert broker.management_url is not None
    wrapped = Page(page, broker.management_url)
    await wrapped.login(user, "secret" if user != "guest" else "guest")
    return wrapped


def _shots() -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    return Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="kiltmq-ui-shots-"))


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    folder = _shots()
    folder.mkdir(parents=True, exist_ok=True)
    await page.page.screenshot(path=str(folder / name), full_page=full_page)
    assert (folder / name).stat().st_size > 0


def q(name: str) -> str:
    return quote(name, safe="")


async def tile(page: Page, label: str) -> str:
    text = await page.page.locator(f".tile:has(.label:text-is('{label}')) .value").inner_text()
    return str(text).replace(",", "")


async def wait_tile(page: Page, label: str, value: str) -> None:
    await page.page.wait_for_function(
        """([label, value]) => [...document.querySelectorAll('.tile')].some((t) =>
             t.querySelector('.label').textContent === label &&
             t.querySelector('.value').textContent.replace(/,/g, '') === value)""",
        arg=[label, value],
    )


async def test_every_page_loads_without_console_errors(browser: Any, broker: Broker) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/queues/%2F/orders", {"durable": True}).status == 201
    assert api.post("/api/bindings/%2F/e/amq.direct/q/orders", {"routing_key": "new"}).status == 201
    connection = pika.BlockingConnection(
        pika.URLParameters(broker.url + "?heartbeat=0&connection_attempts=1")
    )
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=10)
        channel.basic_consume("orders", lambda *a: None)
        name = api.get("/api/connections").body[0]["name"]
        page = await open_page(browser, broker)
        for path in [
            "/", "/connections", f"/connections/{q(name)}", "/channels", "/exchanges",
            "/exchanges/%2F/amq.direct", "/exchanges/%2F/", "/queues", "/queues/%2F/orders",
            "/admin/users", "/admin/vhosts", "/admin/policies", "/admin/limits",
            "/admin/definitions",
        ]:
            reply = await page.goto(path)
            assert reply.status == 200, path
            await page.page.wait_for_load_state("networkidle")
            await page.page.wait_for_selector("main h1")
            assert page.errors == [], (path, page.errors)
        # The pages show what the API says.
        await page.goto(f"/connections/{q(name)}")
        await page.page.wait_for_selector("#channels td:text-is('1')")
        assert "confirm" in await page.page.locator("#channels").inner_text()
        await screenshot(page, "management-connection.png")
        await page.goto("/queues/%2F/orders")
        await page.page.wait_for_selector("#consumers td:has-text('ctag')")
        assert "new" in await page.page.locator("#bindings").inner_text()
        assert page.errors == []
        # Close the connection with a reason from its page.
        await page.goto(f"/connections/{q(name)}")
        await page.page.fill("#close-form input[name=reason]", "closed for the ceilidh")
        page.page.once("dialog", lambda dialog: dialog.accept())
        await page.page.locator("#close-form button").click()
        await page.page.wait_for_selector("#summary:has-text('This connection is closed.')")
        assert api.get("/api/connections").body == []
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            connection.process_data_events(time_limit=5)
        assert "closed for the ceilidh" in str(closed.value)
    finally:
        if connection.is_open:
            connection.close()


async def test_publish_get_purge_and_move_in_the_pages(browser: Any, broker: Broker) -> None:
    api = Api(str(broker.management_url))
    for name in ("kilts", "kilts-archive"):
        assert api.put(f"/api/queues/%2F/{name}", {"durable": True}).status == 201
    bound = api.post("/api/bindings/%2F/e/amq.topic/q/kilts", {"routing_key": "kilt.#"})
    assert bound.status == 201
    page = await open_page(browser, broker)
    await page.goto("/")
    await wait_tile(page, "Ready", "0")

    # Publish from the exchange page: the overview's queued messages go up.
    await page.goto("/exchanges/%2F/amq.topic")
    await page.page.wait_for_selector("#source td:has-text('kilts')")
    form = page.page.locator("#publish-form")
    await form.locator("input[name=routing_key]").fill("kilt.tartan")
    await form.locator("textarea[name=headers]").fill('{"x-pattern": "MacLeod"}')
    await form.locator("textarea[name=properties]").fill('{"content_type": "text/plain"}')
    await form.locator("textarea[name=payload]").fill("one Isle of Skye kilt")
    await form.locator("button").click()
    await page.page.wait_for_selector("#flash .note:has-text('Message published.')")
    await page.goto("/")
    await wait_tile(page, "Ready", "1")
    await page.page.wait_for_selector("#rates-chart polyline", state="attached")
    # the queued messages chart shows the new depth too
    await page.page.wait_for_selector(
        "#queued-chart svg[aria-label='queued messages: Ready 1, Unacknowledged 0, Total 1']",
        state="attached",
    )
    assert "Ready 1" in await page.page.locator("#queued-chart .legend").inner_text()
    await screenshot(page, "management-overview.png")

    # Get messages shows payload, headers and properties (and requeues them).
    await page.goto("/queues/%2F/kilts")
    await wait_tile(page, "Ready", "1")
    await page.page.locator("#get-form button").click()
    message = page.page.locator("#messages .message")
    await message.wait_for()
    text = await message.inner_text()
    assert "one Isle of Skye kilt" in text
    assert "x-pattern" in text and "MacLeod" in text and "text/plain" in text
    await screenshot(page, "management-queue.png")

    # Move it to the archive queue: properties and headers go with it.
    # The broker moves it (a shovel parameter), not the page.
    calls: list[tuple[str, str]] = []
    page.page.on("request", lambda r: calls.append((r.method, urlsplit(r.url).path)))
    await page.page.locator("#move-form input[name=target]").fill("kilts-archive")
    await page.page.locator("#move-form button").click()
    await page.page.wait_for_selector("#flash .note:has-text('Moved 1 message to kilts-archive.')")
    archived = api.post(
        "/api/queues/%2F/kilts-archive/get",
        {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"},
    ).body
    assert [m["payload"] for m in archived] == ["one Isle of Skye kilt"]
    assert archived[0]["properties"]["headers"] == {"x-pattern": "MacLeod"}
    assert archived[0]["properties"]["content_type"] == "text/plain"
    # the broker moved it, as RabbitMQ's shovel: to the default exchange, the queue's name
    assert (archived[0]["exchange"], archived[0]["routing_key"]) == ("", "kilts-archive")
    assert api.get("/api/queues/%2F/kilts").body["messages"] == 0
    assert api.get("/api/parameters/shovel").body == []
    assert ("PUT", "/api/parameters/shovel/%2F/Move%20from%20kilts") in calls
    assert not [c for c in calls if c[0] == "POST"]

    # Purge empties the archive queue.
    await page.goto("/queues/%2F/kilts-archive")
    await wait_tile(page, "Total", "1")
    page.page.once("dialog", lambda dialog: dialog.accept())
    await page.page.locator("#purge").click()
    await wait_tile(page, "Total", "0")
    assert api.get("/api/queues/%2F/kilts-archive").body["messages"] == 0
    assert page.errors == []


async def test_get_messages_shows_the_death_history_of_a_dead_lettered_message(
    browser: Any, broker: Broker
) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/queues/%2F/graveyard", {}).status == 201
    assert api.put("/api/queues/%2F/mortal", {"arguments": {
        "x-message-ttl": 0, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "graveyard",
    }}).status == 201
    published = api.post("/api/exchanges/%2F/amq.default/publish", {
        "routing_key": "mortal", "properties": {}, "payload": "expired kilt",
        "payload_encoding": "string",
    })
    assert published.body == {"routed": True}
    page = await open_page(browser, broker)
    await page.goto("/queues/%2F/graveyard")
    await wait_tile(page, "Ready", "1")
    await page.page.locator("#get-form button").click()
    message = page.page.locator("#messages .message")
    await message.wait_for()
    assert "expired kilt" in await message.inner_text()
    row = message.locator("table.list tbody tr")
    cells = await row.locator("td").all_inner_texts()
    # the page asked with requeue: the API shows the same message and its death
    got = api.post("/api/queues/%2F/graveyard/get",
                   {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}).body
    death = got[0]["properties"]["headers"]["x-death"][0]
    assert isinstance(death["time"], int)
    shown = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(death["time"]))
    assert cells == ["1", "expired", "mortal", "", "mortal", shown]
    assert page.errors == []


async def test_a_refused_action_shows_the_reason_and_stays_on_the_page(
    browser: Any, broker: Broker
) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/users/clerk", {"password": "secret", "tags": "management"}).status == 201
    assert api.put(
        "/api/permissions/%2F/clerk", {"configure": "^mine$", "write": ".*", "read": ".*"}
    ).status == 201
    assert api.put("/api/queues/%2F/precious", {}).status == 201
    page = await open_page(browser, broker, "clerk")
    await page.goto("/queues/%2F/precious")
    await wait_tile(page, "Total", "0")
    # moving needs a shovel parameter, which a management user may not set
    assert not await page.page.locator("#move-form").is_visible()
    assert await page.page.locator("#delete").is_visible()
    page.page.once("dialog", lambda dialog: dialog.accept())
    await page.page.locator("#delete").click()
    await page.page.wait_for_selector("#flash .note.error:has-text('Access refused.')")
    assert page.page.url == page.base + "/queues/%2F/precious"
    assert "clerk" in await page.page.locator("header.top .who").inner_text()
    assert api.get("/api/queues/%2F/precious").status == 200
    # the browser reports the refused request; nothing else went wrong
    assert [e for e in page.errors if "401" not in e] == []


async def test_the_charts_of_a_fresh_tab_start_with_the_brokers_history(
    browser: Any, broker: Broker
) -> None:
    from kiltmq.management.app import ManagementServer
    from kiltmq.management.context import CONTEXT

    server = broker._services["management"]  # to sample now rather than in 5 s
    assert isinstance(server, ManagementServer)
    sampler = server.app[CONTEXT].sampler
    api = Api(str(broker.management_url))
    assert api.put("/api/queues/%2F/charted", {}).status == 201
    for n in range(4):
        published = api.post("/api/exchanges/%2F/amq.default/publish", {
            "routing_key": "charted", "properties": {}, "payload": str(n),
            "payload_encoding": "string",
        })
        assert published.body == {"routed": True}
    broker.call_in_loop(sampler.sample)
    sampled = time.time()
    # the history's samples are on multiples of 5 s: wait for the next one
    time.sleep(5 - sampled % 5 + 0.1)
    page = await open_page(browser, broker)
    for path, store in (("/queues/%2F/charted", "queue./.charted.depth"),
                        ("/", "overview.queued")):
        await page.goto(path)
        await page.page.wait_for_selector("svg.chart-svg polyline", state="attached")
        kept = await page.page.evaluate(
            "(key) => JSON.parse(sessionStorage.getItem(key))", "kiltmq.chart." + store
        )
        # ten minutes every 5 s from the broker, besides the page's own samples
        history = [p for p in kept if p[0] % 5000 == 0]
        assert len(history) >= 121, store
        assert history[-1][0] - history[0][0] >= 600_000, store
        assert [4, 0, 4] in [p[1] for p in history], store
        assert history[0][1] == [0, 0, 0], store  # before the queue was there
    assert page.errors == []


async def test_a_policy_created_in_the_ui_applies_to_a_queue(browser: Any, broker: Broker) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/queues/%2F/capped", {}).status == 201
    page = await open_page(browser, broker)
    await page.goto("/admin/policies")
    form = page.page.locator("#policy-form")
    await form.locator("select[name=vhost]").select_option("/")
    await form.locator("input[name=name]").fill("cap")
    await form.locator("input[name=pattern]").fill("^capped$")
    await form.locator("select[name=apply-to]").select_option("queues")
    await form.locator("textarea[name=definition]").fill('{"max-length": 2}')
    await form.locator("button").click()
    await page.page.wait_for_selector("#table td:text-is('cap')")
    for n in range(5):
        reply = api.post("/api/exchanges/%2F/amq.default/publish", {
            "routing_key": "capped", "properties": {}, "payload": str(n),
            "payload_encoding": "string",
        })
        assert reply.body == {"routed": True}
    assert api.get("/api/queues/%2F/capped").body["messages"] == 2
    assert page.errors == []


async def rows(page: Page, table: str, column: int = 1) -> list[str]:
    cells = page.page.locator(f"{table} tbody tr td:nth-child({column})")
    return [str(t) for t in await cells.all_inner_texts()]


async def test_the_admin_tables_sort_and_filter_in_the_address(
    browser: Any, broker: Broker
) -> None:
    api = Api(str(broker.management_url))
    for user in ("alpha", "beta-ops", "gamma"):
        assert api.put(f"/api/users/{user}", {"password": "pw", "tags": ""}).status == 201
        assert api.put(f"/api/permissions/%2F/{user}", {
            "configure": ".*", "write": ".*", "read": ".*"}).status == 201
    for vhost in ("east", "west"):
        assert api.put(f"/api/vhosts/{vhost}").status == 201
    for name in ("cap", "capped"):
        assert api.put(f"/api/policies/%2F/{name}", {
            "pattern": f"^{name}$", "definition": {"max-length": 1}}).status == 201
    page = await open_page(browser, broker)

    await page.goto("/admin/users")
    await page.page.wait_for_selector("#count:text-is('4 of 4')")
    await page.page.fill("#name-filter", "^(alpha|gamma)$")
    await page.page.check("#regex-filter")
    await page.page.wait_for_selector("#count:text-is('2 of 4')")
    await page.page.locator("#table th:has-text('Name')").click()
    await page.page.wait_for_selector("#table th[aria-sort=descending]")
    assert await rows(page, "#table") == ["gamma", "alpha"]
    assert "use_regex=true" in page.page.url and "sort_reverse=true" in page.page.url
    # the address keeps the view
    await page.goto(urlsplit(page.page.url).path + "?" + urlsplit(page.page.url).query)
    await page.page.wait_for_selector("#count:text-is('2 of 4')")
    assert await rows(page, "#table") == ["gamma", "alpha"]
    assert await page.page.input_value("#name-filter") == "^(alpha|gamma)$"
    # the permissions have their own filter and sort
    await page.page.fill("#perm-name-filter", "beta")
    every = len(api.get("/api/permissions").body)
    await page.page.wait_for_selector(f"#perm-count:text-is('1 of {every}')")
    assert await rows(page, "#permissions") == ["beta-ops"]
    assert "permissions_name=beta" in page.page.url

    await page.goto("/admin/vhosts?name=st")
    await page.page.wait_for_selector("#count:text-is('2 of 3')")
    assert await rows(page, "#table") == ["east", "west"]
    await page.page.locator("#table th:has-text('Name')").click()
    await page.page.wait_for_selector("#table th[aria-sort=descending]")
    assert await rows(page, "#table") == ["west", "east"]

    # a queue's policy links to exactly that policy
    await page.goto("/admin/policies?use_regex=true&name=" + q("^cap$"))
    await page.page.wait_for_selector("#count:text-is('1 of 2')")
    assert await rows(page, "#table", 2) == ["cap"]
    await page.page.uncheck("#regex-filter")
    await page.page.wait_for_selector("#count:text-is('0 of 2')")
    await page.page.fill("#name-filter", "cap")
    await page.page.wait_for_selector("#count:text-is('2 of 2')")
    await page.page.locator("#table th:has-text('Name')").click()
    await page.page.locator("#table th:has-text('Name')").click()
    await page.page.wait_for_selector("#table th[aria-sort=descending]")
    assert await rows(page, "#table", 2) == ["capped", "cap"]
    assert page.errors == []


async def test_a_user_limit_set_in_the_ui_applies(browser: Any, broker: Broker) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/users/app", {"password": "pw", "tags": ""}).status == 201
    assert api.put("/api/permissions/%2F/app", {
        "configure": ".*", "write": ".*", "read": ".*"}).status == 201
    page = await open_page(browser, broker)
    await page.goto("/admin/limits")
    form = page.page.locator("#user-limit-form")
    await page.page.wait_for_selector("#user-limit-form option[value=app]", state="attached")
    await form.locator("select[name=user]").select_option("app")
    await form.locator("select[name=limit]").select_option("max-connections")
    await form.locator("input[name=value]").fill("0")
    await form.locator("button").click()
    await page.page.wait_for_selector("#user-table td:text-is('max-connections')")
    assert "app" in await page.page.locator("#user-table").inner_text()
    assert api.get("/api/user-limits/app").body == [
        {"user": "app", "value": {"max-connections": 0}}
    ]
    params = pika.ConnectionParameters(
        "127.0.0.1", broker.port, "/", pika.PlainCredentials("app", "pw"),
        connection_attempts=1,
    )
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
        pika.BlockingConnection(params)
    assert "user connection limit (0) is reached" in str(refused.value)
    page.page.once("dialog", lambda dialog: dialog.accept())
    await page.page.locator("#user-table button:text-is('Clear')").click()
    await page.page.wait_for_selector("#user-table :text('No user limits.')")
    pika.BlockingConnection(params).close()
    assert page.errors == []


async def test_a_monitoring_user_sees_no_admin_page_and_cannot_delete(
    browser: Any, broker: Broker
) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/users/watcher", {"password": "secret", "tags": "monitoring"}).status == 201
    assert api.put(
        "/api/permissions/%2F/watcher", {"configure": "", "write": "", "read": ".*"}
    ).status == 201
    assert api.put("/api/queues/%2F/precious", {}).status == 201
    page = await open_page(browser, broker, "watcher")
    nav = await page.page.locator("header.top nav").inner_text()
    assert "Queues" in nav and "Admin" not in nav
    for path in ("/admin/users", "/admin/policies", "/admin/definitions"):
        reply = await page.goto(path)
        assert reply.status == 403, path
        assert await page.page.locator("#table").count() == 0
    page.errors.clear()  # the browser reports the 403 replies above
    await page.goto("/queues/%2F/precious")
    await wait_tile(page, "Total", "0")
    assert not await page.page.locator("#delete").is_visible()
    assert not await page.page.locator("#purge").is_visible()
    assert page.errors == []
    # The API refuses the delete too, even with the session's CSRF token.
    status = await page.page.evaluate(
        """async () => (await fetch('/api/queues/%2F/precious', {method: 'DELETE',
             headers: {'X-CSRF-Token': document.body.dataset.csrf}})).status"""
    )
    assert status == 401
    assert api.get("/api/queues/%2F/precious").status == 200


async def test_state_changing_requests_need_the_csrf_token(browser: Any, broker: Broker) -> None:
    api = Api(str(broker.management_url))
    page = await open_page(browser, broker)
    await page.goto("/queues")
    refused = await page.page.evaluate(
        """async () => { const r = await fetch('/api/queues/%2F/forged', {method: 'PUT',
             body: '{}'}); return [r.status, await r.json()]; }"""
    )
    assert refused == [403, {"error": "forbidden", "reason": "CSRF token missing or wrong"}]
    assert api.get("/api/queues/%2F/forged").status == 404
    allowed = await page.page.evaluate(
        """async () => (await fetch('/api/queues/%2F/forged', {method: 'PUT', body: '{}',
             headers: {'X-CSRF-Token': document.body.dataset.csrf}})).status"""
    )
    assert allowed == 201
    # A login form posted without its token is refused; so is a logout.
    login = await page.page.evaluate(
        """async () => (await fetch('/login', {method: 'POST', body: new URLSearchParams(
             {username: 'guest', password: 'guest'})})).status"""
    )
    assert login == 403
    logout = await page.page.evaluate(
        "async () => (await fetch('/logout', {method: 'POST', redirect: 'manual'})).status"
    )
    assert logout == 403
    await page.goto("/queues")
    assert await page.page.locator("header.top").count() == 1  # still logged in
    await page.page.locator(".logout button").click()
    await page.page.wait_for_selector("input[name=username]")
    assert (await page.goto("/queues")).url.startswith(page.base + "/login")


async def test_the_queues_list_with_ten_thousand_queues(
    browser: Any, broker: Broker, record_property: Callable[[str, object], None]
) -> None:
    connection = pika.BlockingConnection(
        pika.URLParameters(broker.url + "?heartbeat=0&connection_attempts=1")
    )
    try:
        channel = connection.channel()
        for n in range(10_000):
            channel.queue_declare(f"load-{n:05d}")
    finally:
        connection.close()
    page = await open_page(browser, broker)
    started = time.perf_counter()
    await page.goto("/queues?name=load-0999&page_size=20")
    await page.page.wait_for_selector("#count:has-text('10 of 10,000')")
    record_property(
        TIMING, f"queues page, 10,000 queues, filtered: {time.perf_counter() - started:.2f} s"
    )
    started = time.perf_counter()
    await page.goto("/queues?sort=name&sort_reverse=true")
    await page.page.wait_for_selector("#table td a:text-is('load-09999')")
    record_property(
        TIMING, f"queues page, 10,000 queues, sorted: {time.perf_counter() - started:.2f} s"
    )
    await screenshot(page, "management-queues.png", full_page=False)
    pages = await page.page.locator("#pager a").all_inner_texts()
    assert pages[-1] == "100"
    # Filters and sort are in the address, so the list can be shared.
    await page.page.fill("#name-filter", "load-000[12]")
    await page.page.check("#regex-filter")
    await page.page.wait_for_selector("#count:has-text('20 of 10,000')")
    assert "use_regex=true" in page.page.url and "sort_reverse=true" in page.page.url
    assert page.errors == []



async def test_the_overview_shows_the_deepest_queues(browser: Any, broker: Broker) -> None:
    api = Api(str(broker.management_url))
    for name, count in (("shallow", 1), ("deep", 3)):
        assert api.put(f"/api/queues/%2F/{name}", {}).status == 201
        for _ in range(count):
            published = api.post("/api/exchanges/%2F/amq.default/publish", {
                "routing_key": name, "properties": {}, "payload": "x",
                "payload_encoding": "string",
            })
            assert published.body == {"routed": True}
    page = await open_page(browser, broker)
    await page.goto("/")
    await page.page.wait_for_selector("#deepest td a")
    assert await page.page.locator("#deepest td a").all_inner_texts() == ["deep", "shallow"]
    # Messages wait and nobody consumes: the consumer count is marked.
    assert await page.page.locator("#deepest .starved").count() == 2
    assert page.errors == []


async def test_the_overview_shows_a_resource_alarm(browser: Any, tmp_path: Path) -> None:
    with Broker(
        port=0, management_port=0, data_dir=tmp_path, disk_free_limit=10**18
    ) as broker:
        page = await open_page(browser, broker)
        await page.goto("/")
        banner = page.page.locator(".alarm-banner")
        await banner.wait_for()
        assert "disk" in await banner.inner_text()
        assert "ALARM" in await page.page.locator(".gauge.alarm").inner_text()
        assert page.errors == []
