"""The store's pages under hostile or careless use: closed tabs, overlong input,
guessed links, card numbers (on the embedded broker; the pages don't depend on it)."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from kiltstore.demo import Store

pytestmark = pytest.mark.parametrize("broker_kind", ["kiltmq"])


async def test_closing_live_pages_logs_nothing(
    store: Store, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    pages = ("workshop", "order board", "mailbox", "web store")
    for page in pages:
        response = await http.get(store.urls[page] + "/events")
        assert (await response.content.readline()) == b"retry: 1000\n"
        response.close()  # the tab is closed
    hubs = [store.service(name).hub for name in ("workshop", "board", "mailbox", "webstore")]
    for hub in hubs:
        hub.publish("jobs", {})
    # The next stream sees its event only after the closed streams were written to.
    response = await http.get(store.urls["workshop"] + "/events")
    await response.content.readline()
    await response.content.readline()
    for hub in hubs:
        hub.publish("jobs", {})
    assert (await response.content.readline()) == b"event: jobs\n"
    response.close()
    noisy = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert noisy == [], [r.getMessage() for r in noisy]
