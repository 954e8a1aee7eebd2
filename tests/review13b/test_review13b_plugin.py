"""Review of #13's pytest plugin, used as a newcomer would: the fixtures straight from a test (this suite runs
with the plugin and ``trio_mode``), against the fixture-owned local server."""

import contextlib
import pathlib
import subprocess
import sys

import pytest
import trio

import rtengine
from rtengine.server import Faults, ServerOptions
from rtengine.testing import TEST_API_KEY, RealtimeTestServer, apply_marker

SESSION = rtengine.SessionConfig(instructions="test")
ERROR_EVENT = {"type": "error", "error": {"type": "invalid_request_error", "message": "scripted"}}


@pytest.mark.xfail(
    strict=True,
    reason="review: realtime_server.drop_sideband() on a plain websocket conversation waits forever for a sideband "
    "(the server's own drop_sideband drops a direct websocket; the helper neither does that nor says it cannot)",
)
async def test_drop_sideband_on_a_websocket_conversation_does_not_hang(
    realtime_client: rtengine.RealtimeClient, realtime_server: RealtimeTestServer
) -> None:
    with trio.fail_after(15):
        async with rtengine.open_conversation(realtime_client, SESSION) as conv:
            await realtime_server.wait_for_client_event("session.update")
            with trio.move_on_after(5) as waited:  # generous: the drop is one local close frame
                # refusing with an error is a fine answer too; hanging is not
                with contextlib.suppress(LookupError, TypeError, ValueError):
                    await realtime_server.drop_sideband()
            await conv.close()
    assert not waited.cancelled_caught, "drop_sideband() hung on a websocket conversation"


@pytest.mark.xfail(
    strict=True,
    reason="review: with two websocket conversations inject() raises LookupError '2 live conversations; name one "
    "by its call_id', but a websocket conversation has no call_id (conv.call_id is None): no way to target one",
)
async def test_inject_can_target_one_of_two_websocket_conversations(
    realtime_client: rtengine.RealtimeClient, realtime_server: RealtimeTestServer
) -> None:
    with trio.fail_after(15):
        async with (
            rtengine.open_conversation(realtime_client, SESSION) as first,
            rtengine.open_conversation(realtime_client, SESSION) as second,
        ):
            await realtime_server.wait_for_client_event("session.update", count=2)
            assert first.call_id is None  # nothing else names a websocket conversation
            assert second.call_id is None
            await realtime_server.inject(ERROR_EVENT, call_id=second.call_id)
            async for event in second.events:
                if isinstance(event, rtengine.events.Error):
                    assert event.message == "scripted"
                    break


USER_TEST = """
import rtengine


async def test_uses_the_server(realtime_server):
    assert realtime_server.base_url
"""

WITHOUT_PYTEST_TRIO = """
import sys
from importlib.metadata import entry_points


class NotInstalled:  # pytest-trio not installed: importing it raises ModuleNotFoundError
    def find_spec(self, name, path=None, target=None):
        if name == "pytest_trio" or name.startswith("pytest_trio."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
import pytest

installed = any(ep.value == "rtengine.testing" for ep in entry_points(group="pytest11"))
plugin = [] if installed else ["-p", "rtengine.testing"]
sys.exit(pytest.main([*plugin, "-p", "no:trio", "-p", "no:cacheprovider", "-p", "no:asyncio", "-q", "test_user.py"]))
"""


@pytest.mark.xfail(
    strict=True,
    reason="review: without pytest-trio, a test asking for realtime_server fails with pytest's 'requested an async "
    "fixture … with no plugin or hook that handled it', not the plugin's 'need pytest-trio (pip install "
    "pytest-trio)': _needs_pytest_trio() sits inside the async fixture body that never runs",
)
def test_without_pytest_trio_the_failure_says_to_install_it(tmp_path: pathlib.Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST, encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYTEST_TRIO],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode != 0, ran.stdout  # the test cannot pass without pytest-trio
    assert "pip install pytest-trio" in ran.stdout, ran.stdout


@pytest.mark.xfail(
    strict=True,
    reason="review: @pytest.mark.realtime_server(faults=Faults(...)) — faults is a ServerOptions field, which the "
    "marker documents as accepted — fails with TypeError 'dataclasses.replace() got multiple values for keyword "
    "argument faults'",
)
def test_the_marker_takes_the_faults_field_of_server_options() -> None:
    options = apply_marker(ServerOptions(api_key=TEST_API_KEY), {"faults": Faults(close_after_events=3)})
    assert options.faults.close_after_events == 3
