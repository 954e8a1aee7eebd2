"""rtengine's pytest plugin: test a trio app that embeds rtengine offline, against the local realtime server.

Installed with rtengine (a ``pytest11`` entry point named ``rtengine``), it needs pytest-trio. Fixtures (run your
tests with ``trio_mode = true``, or mark them ``@pytest.mark.trio``):

* ``realtime_server`` — the local realtime server for one test, on 127.0.0.1 and a free port, and helpers to
  script it while the test runs (:class:`RealtimeTestServer`: ``inject``, ``drop_sideband``, ``delay_next_join``,
  ``set_faults``, ``client_events``, ``wait_for_client_event``, ``record``).
* ``realtime_client`` — an :class:`rtengine.RealtimeClient` bound to that server.
* ``realtime_env`` — ``$OPENAI_BASE_URL`` and ``$OPENAI_API_KEY`` pointing at that server, for an app that builds
  its own ``RealtimeClient()``.
* ``realtime_server_options`` — the :class:`rtengine.server.ServerOptions` the server starts with; override it in
  a ``conftest.py`` for a whole directory.
* the marker ``@pytest.mark.realtime_server(**knobs)`` — per test (or class, module): any field of
  ``ServerOptions`` (``reply_text="…"``, ``tool_call=ToolScript("lookup")``, ``faults=Faults(…)``,
  ``session_max_seconds=2``) or of :class:`rtengine.server.Faults` (``sideband_accept_delay=0.2``,
  ``refuse_sideband_joins=1``, ``close_after_events=5`` …, applied over ``faults``), applied over
  ``realtime_server_options``; the marker nearest the test wins.

A test that asks for ``realtime_server`` or ``realtime_client`` without pytest-trio, or from a sync ``def`` test,
fails at setup with a message saying what to change (the tests after it are unaffected).

pytest loads the plugin from the small module ``_rtengine_pytest`` beside this package, which imports neither
rtengine nor its server nor aiortc: they load when a test first asks for a fixture. This module holds the same
fixtures and hooks, for ``-p rtengine.testing`` where rtengine is not installed, and the public names to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from _rtengine_pytest import TEST_API_KEY as TEST_API_KEY
from _rtengine_pytest import _realtime_server_marked_options as _realtime_server_marked_options
from _rtengine_pytest import apply_marker as apply_marker
from _rtengine_pytest import pytest_configure as pytest_configure
from _rtengine_pytest import pytest_fixture_setup as pytest_fixture_setup
from _rtengine_pytest import realtime_client as realtime_client
from _rtengine_pytest import realtime_client_options as realtime_client_options
from _rtengine_pytest import realtime_env as realtime_env
from _rtengine_pytest import realtime_server as realtime_server
from _rtengine_pytest import realtime_server_options as realtime_server_options

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "RealtimeTestServer":  # the annotation type, without importing the server at plugin load
        from ._scripted import RealtimeTestServer

        return RealtimeTestServer
    raise AttributeError(name)
