"""pytest plugin for kiltmq, registered through the ``pytest11`` entry point: test code
written with pika, aio-pika, kombu or kiltmq without a RabbitMQ.

Fixtures
--------
``amqp_broker``
    A :class:`~kiltmq.testing.BrokerFixture`: an embedded, memory-only kiltmq broker
    (``Broker(port=0)`` running in its own thread) seen from a virtual host of the test's
    own. By default one broker serves the whole session and every test gets a fresh
    vhost, deleted after the test (its clients are closed, its queues go). With
    ``--kiltmq-broker-scope=function`` (or the ini option ``kiltmq_broker_scope``, or the
    marker ``@pytest.mark.kiltmq_broker(scope="function")``) every test gets a broker
    of its own, on the vhost ``/``.
``amqp_url``
    ``amqp_broker.url``: ``amqp://guest:guest@127.0.0.1:<port>/<vhost>``, the vhost
    percent-encoded.
``amqp_broker_per_test``
    Always a broker of the test's own (vhost ``/``).
``amqp_broker_session``
    The session's shared broker on the vhost ``/``, for session- or module-scoped
    fixtures.
``amqp_broker_options``
    Keyword arguments for every ``Broker`` the plugin starts (default none, or
    ``management_port=0`` with ``--kiltmq-management``); override it in a conftest.py
    (session scope).
``amqp_management_url``
    The base URL of the management HTTP API of the test's broker
    (``http://127.0.0.1:<port>``, user ``guest``/``guest``). The plugin's brokers serve it
    with ``--kiltmq-management`` (or the ini option ``kiltmq_management = true``), with
    ``management_port=0`` in ``amqp_broker_options``, or for one test with
    ``@pytest.mark.kiltmq_broker(management_port=0)``. Needs aiohttp.

Marker
------
``@pytest.mark.kiltmq_broker(scope="function", **options)``: the test's ``amqp_broker``
is a broker of its own, started with ``options`` (``Broker`` keyword arguments, e.g.
``heartbeat=2`` or ``users={"app": "secret"}``) on top of ``amqp_broker_options``;
``clock="frozen"`` starts its clock frozen (``amqp_broker.clock.advance`` moves it);
``durable=True`` gives it a data directory of its own, so ``amqp_broker.restart()``
keeps durable queues and persistent messages.

``@pytest.mark.kiltmq_clock("frozen")``: the broker's clock is frozen for the test (only
``amqp_broker.clock.advance`` moves it) and, on the session's shared broker, flows again
after it; works whatever broker the test gets (``"running"``: a per-test broker started
with ``clock="frozen"`` runs).

``@pytest.mark.kiltmq_frames`` (or ``--kiltmq-frames``, or the ini option
``kiltmq_frames = true`` for every test): record the test's AMQP frames
(``amqp_broker.frames(connection)``); the report of a failed test shows them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kiltmq.testing.fixture import BrokerFixture

SCOPES = ("session", "function")
MARKER = "kiltmq_broker"
#: Longest per-test vhost name (a connection.open path is at most 127 bytes).
VHOST_MAX = 100

FRAMES_MARKER = "kiltmq_frames"
CLOCK_MARKER = "kiltmq_clock"
CLOCK_STATES = ("frozen", "running")
#: The test's fixture, for the report of a failed test.
FIXTURE_KEY = pytest.StashKey["BrokerFixture"]()

_counter = itertools.count(1)


def _wants_frames(request: pytest.FixtureRequest) -> bool:
    config = request.config
    if config.getoption("kiltmq_frames", None) or config.getini("kiltmq_frames"):
        return True
    return request.node.get_closest_marker(FRAMES_MARKER) is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that recorded frames gets them in its report ("kiltmq frames")."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    fixture = item.stash.get(FIXTURE_KEY, None)
    if fixture is None or not report.failed or report.when == "teardown":
        return
    if not fixture.capturing:
        return
    try:
        text = fixture.conversation()
    except Exception as exc:  # the broker may be gone with the failure
        text = f"(frames unavailable: {exc})"
    if text:
        report.sections.append(("kiltmq frames", text))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kiltmq", "embedded AMQP broker (kiltmq)")
    group.addoption(
        "--kiltmq-broker-scope",
        dest="kiltmq_broker_scope",
        choices=SCOPES,
        default=None,
        help="session (default): one broker, a fresh vhost per test; "
        "function: a broker per test",
    )
    group.addoption(
        "--kiltmq-management",
        dest="kiltmq_management",
        action="store_true",
        default=None,
        help="the embedded brokers serve the management HTTP API (amqp_management_url)",
    )
    parser.addini(
        "kiltmq_management",
        help="the embedded brokers serve the management HTTP API (true/false)",
        type="bool",
        default=False,
    )
    parser.addini(
        "kiltmq_broker_scope",
        help="scope of the amqp_broker fixture's broker: session (default) or function",
        default="session",
    )
    group.addoption(
        "--kiltmq-frames",
        dest="kiltmq_frames",
        action="store_true",
        default=None,
        help="record the AMQP frames of every test using amqp_broker; a failed test's "
        "report shows them",
    )
    parser.addini(
        "kiltmq_frames",
        type="bool",
        help="record the AMQP frames of every test using amqp_broker (default false)",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(scope='function', **options): give the test an embedded AMQP broker of "
        "its own, started with Broker(**options)",
    )
    config.addinivalue_line(
        "markers",
        f"{CLOCK_MARKER}('frozen'): the broker's clock is frozen for the test (only "
        "amqp_broker.clock.advance moves it), and flows again after it",
    )
    config.addinivalue_line(
        "markers",
        f"{FRAMES_MARKER}: record the test's AMQP frames (amqp_broker.frames(); shown in "
        "the report if it fails)",
    )


def _clock_state(request: pytest.FixtureRequest) -> str | None:
    """What ``@pytest.mark.kiltmq_clock(...)`` asks of the clock (None: no marker)."""
    marker = request.node.get_closest_marker(CLOCK_MARKER)
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.kwargs or marker.args[0] not in CLOCK_STATES:
        raise pytest.UsageError(
            f"@pytest.mark.{CLOCK_MARKER} takes one of {CLOCK_STATES}, e.g. "
            f'@pytest.mark.{CLOCK_MARKER}("frozen")'
        )
    return str(marker.args[0])


def _scope(config: pytest.Config) -> str:
    scope = config.getoption("kiltmq_broker_scope", None) or config.getini("kiltmq_broker_scope")
    if scope not in SCOPES:
        raise pytest.UsageError(f"kiltmq_broker_scope must be one of {SCOPES}, not {scope!r}")
    return str(scope)


def _vhost_name(node_name: str) -> str:
    """A vhost name for a test: ``pytest/<n>/<test name>`` (the slashes and the
    percent-encoding they need in URLs are on purpose)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", node_name).strip("-") or "test"
    return f"pytest/{next(_counter)}/{cleaned}"[:VHOST_MAX]


@pytest.fixture(scope="session")
def amqp_broker_options(pytestconfig: pytest.Config) -> dict[str, Any]:
    """``Broker`` keyword arguments for the brokers the plugin starts (override it)."""
    management = pytestconfig.getoption("kiltmq_management", None)
    if management is None:
        management = pytestconfig.getini("kiltmq_management")
    return {"management_port": 0} if management else {}


@pytest.fixture(scope="session")
def amqp_broker_session(amqp_broker_options: dict[str, Any]) -> Iterator[BrokerFixture]:
    """The session's embedded broker, on the vhost ``/``."""
    from kiltmq.testing.fixture import BrokerFixture

    with BrokerFixture.start(**amqp_broker_options) as fixture:
        yield fixture


@pytest.fixture
def amqp_broker_per_test(amqp_broker_options: dict[str, Any]) -> Iterator[BrokerFixture]:
    """An embedded broker of this test's own, on the vhost ``/``."""
    from kiltmq.testing.fixture import BrokerFixture

    with BrokerFixture.start(**amqp_broker_options) as fixture:
        yield fixture


@pytest.fixture
def amqp_broker(request: pytest.FixtureRequest) -> Iterator[BrokerFixture]:
    """An embedded AMQP broker for this test (a kiltmq.testing.BrokerFixture): the
    session's broker seen from a fresh vhost of the test's own, or a broker of the test's
    own with --kiltmq-broker-scope=function or @pytest.mark.kiltmq_broker(...). Inspect
    queues, wait for acks, inject messages, close connections: see docs/testing.md."""
    from kiltmq.testing.fixture import BrokerFixture

    scope = _scope(request.config)
    _clock_state(request)  # a wrong marker fails before a broker starts
    options: dict[str, Any] = {}
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        options = dict(marker.kwargs)
        scope = options.pop("scope", "function")
        if scope not in SCOPES:
            raise pytest.UsageError(f"@pytest.mark.{MARKER}: scope must be one of {SCOPES}")
        if scope == "session" and options:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER}: broker options need scope='function'"
            )
    if scope == "function":
        base: dict[str, Any] = request.getfixturevalue("amqp_broker_options")
        options = {**base, **options}
        if options.pop("durable", False) and options.get("data_dir") is None:
            factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
            options["data_dir"] = factory.mktemp("kiltmq")
        with BrokerFixture.start(**options) as fixture:
            try:
                yield from _serve(request, fixture)
            finally:
                fixture.faults.clear()
        return
    shared: BrokerFixture = request.getfixturevalue("amqp_broker_session")
    fixture = shared.add_vhost(_vhost_name(request.node.name))
    try:
        yield from _serve(request, fixture)
    finally:
        fixture.faults.clear()
        fixture.delete_vhost()
        if fixture.clock.frozen:  # time flows again for the next test
            fixture.clock.resume()


def _serve(request: pytest.FixtureRequest, fixture: BrokerFixture) -> Iterator[BrokerFixture]:
    """Yield the fixture, recording frames if asked to (then stopped)."""
    request.node.stash[FIXTURE_KEY] = fixture
    clock = _clock_state(request)
    if clock == "frozen" and not fixture.clock.frozen:
        fixture.clock.freeze()
    elif clock == "running" and fixture.clock.frozen:
        fixture.clock.resume()
    fixture.record_published()
    if _wants_frames(request):
        fixture.capture_frames()
    try:
        yield fixture
    finally:
        if fixture.capturing:
            fixture.stop_capture()
        fixture.stop_recording_published()


@pytest.fixture
def amqp_management_url(amqp_broker: BrokerFixture) -> str:
    """The base URL of the management API of this test's broker (see the module's
    docstring for how to turn it on)."""
    return amqp_broker.management_url


@pytest.fixture
def amqp_url(amqp_broker: BrokerFixture) -> str:
    """The URL of this test's broker and vhost (``amqp_broker.url``)."""
    return amqp_broker.url
