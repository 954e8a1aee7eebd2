"""rtengine's pytest plugin as pytest loads it (the ``rtengine`` ``pytest11`` entry point): the fixtures, the marker
and the checks that make a misused fixture fail with a message saying what to do.

This module sits outside the ``rtengine`` package on purpose: importing anything from ``rtengine`` runs its
``__init__`` (httpx, the websocket client …), and pytest imports every installed plugin at start-up, in every project
that installs rtengine, whether or not its tests use the fixtures. So at import this module needs only pytest (and
pytest-trio, which pytest has loaded already when it is installed); rtengine, its local server and aiortc are
imported inside the fixtures, by the first test that asks for one. Import the public names (``TEST_API_KEY``,
``RealtimeTestServer``, ``apply_marker``) from :mod:`rtengine.testing`, which is documented and also works as a plugin
(``-p rtengine.testing``) where rtengine is not installed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from _pytest.fixtures import SubRequest  # the request pytest's own hookspec passes to pytest_fixture_setup

    import rtengine
    from rtengine.server import ServerOptions
    from rtengine.testing._scripted import RealtimeTestServer

__all__ = [
    "TEST_API_KEY",
    "apply_marker",
    "realtime_client",
    "realtime_client_options",
    "realtime_env",
    "realtime_server",
    "realtime_server_options",
]

#: The API key the plugin's server requires and its client sends (a fake one: the server is local).
TEST_API_KEY: Final = "sk-rtengine-test"
MARKER: Final = "realtime_server"
#: Set on the fixtures that run in the test's trio run (checked by :func:`pytest_fixture_setup`).
_NEEDS_TRIO: Final = "_rtengine_needs_trio"

F = TypeVar("F", bound=Callable[..., Any])

try:
    import pytest_trio
except ImportError:  # pytest-trio missing: the fixtures then fail with a message saying so (pytest_fixture_setup)
    pytest_trio = None


def _trio_fixture(func: F) -> F:
    """A fixture pytest-trio runs in the test's trio run, with or without ``trio_mode``."""
    setattr(func, _NEEDS_TRIO, True)
    if pytest_trio is None:
        return cast(F, pytest.fixture(func))
    return cast(F, pytest_trio.trio_fixture(func))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**knobs): options of the rtengine local server for this test: fields of "
        "rtengine.server.ServerOptions or rtengine.server.Faults (e.g. sideband_accept_delay=0.2)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: SubRequest) -> object | None:
    """Before pytest-trio sees one of the trio fixtures: fail the test with a message saying what to do when
    pytest-trio is missing or disabled, or when the test is not a trio test (a sync ``def`` test, or an ``async def``
    one that pytest-trio does not run). The failure is cached on the fixture as pytest caches any setup error, so
    its teardown runs and the next test starts clean."""
    if not getattr(fixturedef.func, _NEEDS_TRIO, False):
        return None
    problem = _trio_problem(request)
    if problem is None:
        return None
    try:
        pytest.fail(problem, pytrace=False)
    except pytest.fail.Exception as exc:
        fixturedef.cached_result = (None, fixturedef.cache_key(request), (exc, exc.__traceback__))
        raise


def _trio_problem(request: pytest.FixtureRequest) -> str | None:
    fixture = request.fixturename
    if not request.config.pluginmanager.hasplugin("trio"):
        return (
            f"rtengine's {fixture} fixture needs pytest-trio: pip install pytest-trio, then set trio_mode = true "
            "in your pytest configuration (or mark the test @pytest.mark.trio)"
        )
    if request.node.get_closest_marker("trio") is None:
        return (
            f"{request.node.name} is not a trio test, and rtengine's {fixture} fixture runs in the test's trio "
            "run: make the test 'async def' with trio_mode = true in your pytest configuration, or mark it "
            "@pytest.mark.trio"
        )
    return None


def apply_marker(options: ServerOptions, knobs: dict[str, Any]) -> ServerOptions:
    """``options`` with the marker's ``knobs`` applied: a field of ``ServerOptions`` replaces it (``faults=Faults(…)``
    replaces all the faults), then a field of ``Faults`` replaces it in those faults (so ``faults=Faults(a=1), b=2``
    has both). An unknown name raises ``TypeError`` naming it."""
    from rtengine.server import Faults

    server_fields = {f.name for f in dataclasses.fields(options)}
    fault_fields = {f.name for f in dataclasses.fields(Faults)}
    unknown = sorted(set(knobs) - server_fields - fault_fields)
    if unknown:
        raise TypeError(f"unknown realtime_server knob(s) {', '.join(unknown)}: not a ServerOptions or Faults field")
    options = dataclasses.replace(options, **{k: v for k, v in knobs.items() if k in server_fields})
    fault_knobs = {k: v for k, v in knobs.items() if k in fault_fields}
    return dataclasses.replace(options, faults=dataclasses.replace(options.faults, **fault_knobs))


@pytest.fixture
def realtime_server_options() -> ServerOptions:
    """The options the ``realtime_server`` fixture starts from: 127.0.0.1 on a free port, the API key
    ``TEST_API_KEY`` (``"sk-rtengine-test"``), responses streamed without pauses (``delta_interval=0``) and ICE
    pinned to 127.0.0.1 (``loopback=True``: WebRTC calls connect on a machine without a network). Override this
    fixture in your ``conftest.py`` to change them for many tests; use the ``realtime_server`` marker for one."""
    from rtengine.server import ServerOptions

    return ServerOptions(api_key=TEST_API_KEY, delta_interval=0.0, loopback=True)


@pytest.fixture
def _realtime_server_marked_options(
    request: pytest.FixtureRequest, realtime_server_options: ServerOptions
) -> ServerOptions:
    """``realtime_server_options`` with the ``realtime_server`` markers applied, farthest first (a misspelt knob is
    an error in the test's setup, naming it)."""
    options = realtime_server_options
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            pytest.fail(f"@pytest.mark.{MARKER} takes keyword arguments only", pytrace=False)
        try:
            options = apply_marker(options, dict(marker.kwargs))
        except (TypeError, ValueError) as exc:
            pytest.fail(f"@pytest.mark.{MARKER}: {exc}", pytrace=False)
    return options


@_trio_fixture
async def realtime_server(_realtime_server_marked_options: ServerOptions) -> AsyncIterator[RealtimeTestServer]:
    """The local realtime server for one test: ``realtime_server_options`` with the ``realtime_server`` markers
    applied (farthest first, so the one on the test wins). Yields a :class:`RealtimeTestServer`: ``base_url``,
    ``api_key``, ``record`` and the scripting helpers. Teardown, also when the test fails or is cancelled, closes
    every connection and call (shielded, bounded). A test that is not run by pytest-trio fails at setup, saying so."""
    from rtengine.server import open_local_server
    from rtengine.testing._scripted import RealtimeTestServer

    async with open_local_server(_realtime_server_marked_options) as server:
        yield RealtimeTestServer(server)


@pytest.fixture
def realtime_client_options() -> dict[str, Any]:
    """Keyword arguments for the ``realtime_client`` fixture's :class:`rtengine.RealtimeClient` beyond its base URL
    and key (by default short retry pauses: ``backoff_base=0.01``). Override it to tune retries or timeouts."""
    return {"backoff_base": 0.01}


@_trio_fixture
async def realtime_client(
    realtime_server: RealtimeTestServer, realtime_client_options: dict[str, Any]
) -> AsyncIterator[rtengine.RealtimeClient]:
    """An :class:`rtengine.RealtimeClient` bound to ``realtime_server`` (its base URL and API key), closed after the
    test; pass it to ``rtengine.open_conversation``."""
    import rtengine

    client = rtengine.RealtimeClient(
        realtime_server.base_url, api_key=realtime_server.api_key, **realtime_client_options
    )
    async with client:
        yield client


@pytest.fixture
def realtime_env(realtime_server: RealtimeTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ``$OPENAI_BASE_URL`` and ``$OPENAI_API_KEY`` at ``realtime_server`` for the test (restored after), for
    an app that builds its own ``rtengine.RealtimeClient()`` from the environment."""
    monkeypatch.setenv("OPENAI_BASE_URL", realtime_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", realtime_server.api_key or TEST_API_KEY)
