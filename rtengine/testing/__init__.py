"""rtengine's pytest plugin: test a trio app that embeds rtengine offline, against the local realtime server.

Installed with rtengine (a ``pytest11`` entry point), it needs pytest-trio. Fixtures (run your tests with
``trio_mode = true``, or mark them ``@pytest.mark.trio``):

* ``realtime_server`` — the local realtime server for one test, on 127.0.0.1 and a free port, and helpers to
  script it while the test runs (:class:`RealtimeTestServer`: ``inject``, ``drop_sideband``, ``delay_next_join``,
  ``set_faults``, ``client_events``, ``wait_for_client_event``, ``record``).
* ``realtime_client`` — an :class:`rtengine.RealtimeClient` bound to that server.
* ``realtime_env`` — ``$OPENAI_BASE_URL`` and ``$OPENAI_API_KEY`` pointing at that server, for an app that builds
  its own ``RealtimeClient()``.
* ``realtime_server_options`` — the :class:`rtengine.server.ServerOptions` the server starts with; override it in
  a ``conftest.py`` for a whole directory.
* the marker ``@pytest.mark.realtime_server(**knobs)`` — per test (or class, module): any field of
  ``ServerOptions`` (``reply_text="…"``, ``tool_call=ToolScript("lookup")``, ``session_max_seconds=2``) or of
  :class:`rtengine.server.Faults` (``sideband_accept_delay=0.2``, ``refuse_sideband_joins=1``,
  ``close_after_events=5`` …), applied over ``realtime_server_options``; the marker nearest the test wins.

Importing the plugin imports neither the server nor aiortc: they load when a test first asks for a fixture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import pytest

import rtengine

if TYPE_CHECKING:
    from rtengine.server import ServerOptions

    from ._scripted import RealtimeTestServer

__all__ = [
    "TEST_API_KEY",
    "RealtimeTestServer",
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

F = TypeVar("F", bound=Callable[..., Any])

try:
    import pytest_trio
except ImportError:  # pragma: no cover - pytest-trio is a requirement of the fixtures, not of the import
    pytest_trio = None


def _trio_fixture(func: F) -> F:
    """A fixture pytest-trio runs in the test's trio run, with or without ``trio_mode``."""
    if pytest_trio is None:  # pragma: no cover - the fixture then fails with a message saying what is missing
        return cast(F, pytest.fixture(func))
    return cast(F, pytest_trio.trio_fixture(func))


def __getattr__(name: str) -> Any:
    if name == "RealtimeTestServer":  # the annotation type, without importing the server at plugin load
        from ._scripted import RealtimeTestServer

        return RealtimeTestServer
    raise AttributeError(name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**knobs): options of the rtengine local server for this test: fields of "
        "rtengine.server.ServerOptions or rtengine.server.Faults (e.g. sideband_accept_delay=0.2)",
    )


def apply_marker(options: ServerOptions, knobs: dict[str, Any]) -> ServerOptions:
    """``options`` with the marker's ``knobs`` applied: a field of ``ServerOptions`` replaces it, a field of
    ``Faults`` replaces it in ``options.faults``. An unknown name raises ``TypeError`` naming it."""
    from rtengine.server import Faults

    server_fields = {f.name for f in dataclasses.fields(options)}
    fault_fields = {f.name for f in dataclasses.fields(Faults)}
    unknown = sorted(set(knobs) - server_fields - fault_fields)
    if unknown:
        raise TypeError(f"unknown realtime_server knob(s) {', '.join(unknown)}: not a ServerOptions or Faults field")
    faults = dataclasses.replace(options.faults, **{k: v for k, v in knobs.items() if k in fault_fields})
    return dataclasses.replace(options, **{k: v for k, v in knobs.items() if k in server_fields}, faults=faults)


def _needs_pytest_trio() -> None:
    if pytest_trio is None:  # pragma: no cover
        pytest.fail("rtengine's realtime fixtures need pytest-trio (pip install pytest-trio)", pytrace=False)


@pytest.fixture
def realtime_server_options() -> ServerOptions:
    """The options the ``realtime_server`` fixture starts from: 127.0.0.1 on a free port, the API key
    :data:`TEST_API_KEY`, responses streamed without pauses (``delta_interval=0``) and ICE pinned to 127.0.0.1
    (``loopback=True``: WebRTC calls connect on a machine without a network). Override this fixture in your
    ``conftest.py`` to change them for many tests; use the ``realtime_server`` marker for one."""
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
    every connection and call (shielded, bounded)."""
    _needs_pytest_trio()
    from rtengine.server import open_local_server

    from ._scripted import RealtimeTestServer

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
    _needs_pytest_trio()
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
