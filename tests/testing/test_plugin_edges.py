"""rtengine's pytest plugin at its edges, as a newcomer meets them: the fixtures straight from a test (this suite runs
with the plugin and ``trio_mode``) on websocket conversations, and user projects run in a subprocess where the
behaviour is pytest's (no pytest-trio, a sync test, the cost of loading the plugin)."""

import contextlib
import pathlib
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest
import trio

import rtengine
from rtengine.events import SessionCreated
from rtengine.server import Faults, ServerOptions
from rtengine.testing import TEST_API_KEY, RealtimeTestServer, apply_marker

SESSION = rtengine.SessionConfig(instructions="test")
#: Load the plugin in a pytester run unless its entry point is installed (then ``-p`` would register it twice).
PLUGIN = [] if any(ep.name == "rtengine" for ep in entry_points(group="pytest11")) else ["-p", "_rtengine_pytest"]
ERROR_EVENT = {"type": "error", "error": {"type": "invalid_request_error", "message": "scripted"}}


async def session_id_of(conv: rtengine.Conversation) -> str:
    """The ``session_id`` the conversation's ``SessionCreated`` showed: how a test names a websocket conversation."""
    async for event in conv.events:
        if isinstance(event, SessionCreated):
            return event.session_id
    raise AssertionError("the conversation ended before session.created")


async def test_drop_sideband_on_a_websocket_conversation_drops_its_websocket(
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
    [direct] = realtime_server.record.connections
    assert (direct.kind, direct.end, direct.close_code) == ("direct", "server_close", 1011)


async def test_inject_targets_one_of_two_websocket_conversations_by_its_session_id(
    realtime_client: rtengine.RealtimeClient, realtime_server: RealtimeTestServer
) -> None:
    with trio.fail_after(15):
        async with (
            rtengine.open_conversation(realtime_client, SESSION) as first,
            rtengine.open_conversation(realtime_client, SESSION) as second,
        ):
            await realtime_server.wait_for_client_event("session.update", count=2)
            assert first.call_id is None  # a websocket conversation has no call id ...
            with pytest.raises(LookupError, match=r"session_id= .*SessionCreated"):  # ... and the error says so
                await realtime_server.inject(ERROR_EVENT)
            first_id, second_id = await session_id_of(first), await session_id_of(second)
            assert first_id != second_id
            sent = await realtime_server.inject(ERROR_EVENT, session_id=second_id)
            async for event in second.events:
                if isinstance(event, rtengine.events.Error):
                    assert event.message == "scripted"
                    break
            with pytest.raises(LookupError, match="no live conversation with session id 'sess_nope'"):
                await realtime_server.inject(ERROR_EVENT, session_id="sess_nope")
    first_out, second_out = (conn.frames_out for conn in realtime_server.record.connections)
    assert sent in second_out
    assert sent not in first_out  # only the named conversation got it


def test_the_marker_takes_the_faults_field_of_server_options() -> None:
    options = apply_marker(ServerOptions(api_key=TEST_API_KEY), {"faults": Faults(close_after_events=3)})
    assert options.faults.close_after_events == 3
    both = apply_marker(options, {"faults": Faults(close_after_events=4), "refuse_sideband_joins": 1})
    assert (both.faults.close_after_events, both.faults.refuse_sideband_joins) == (4, 1)  # the knob over faults=


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

installed = any(ep.name == "rtengine" for ep in entry_points(group="pytest11"))
plugin = [] if installed else ["-p", "_rtengine_pytest"]
sys.exit(pytest.main([*plugin, "-p", "no:trio", "-p", "no:cacheprovider", "-p", "no:asyncio", "-q", "test_user.py"]))
"""


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
    assert "no plugin or hook that handled it" not in ran.stdout, ran.stdout


def test_a_sync_test_asking_for_the_server_fails_clearly_and_the_next_test_runs(pytester: pytest.Pytester) -> None:
    """A ``def`` test cannot use a fixture that lives in a trio run: it fails at setup saying what to change, and the
    async test after it gets its own server (before, pytest-trio's RuntimeError left the fixture half set up and
    the next test errored on an ``AssertionError`` inside pytest)."""
    pytester.makeini("[pytest]\ntrio_mode = true\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_user=textwrap.dedent("""
            import rtengine

            def test_sync(realtime_server):
                assert realtime_server.base_url

            async def test_after(realtime_client, realtime_server):
                async with rtengine.open_conversation(realtime_client, rtengine.SessionConfig()) as conv:
                    await conv.close()
                assert [conn.end for conn in realtime_server.record.connections] == ["client_close"]
        """)
    )
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:asyncio", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test_sync is not a trio test*make the test 'async def' with trio_mode = true*"])


def test_the_entry_module_imports_no_rtengine() -> None:
    """pytest imports the entry point's module at start-up in every project that installs rtengine: it must not
    import rtengine (whose ``__init__`` brings httpx and the websocket client), its server or aiortc."""
    probe = "import sys, _rtengine_pytest; print(sorted(m for m in sys.modules if m.split('.')[0] in {h!r}))"
    heavy = {"rtengine", "aiortc", "httpx", "av", "trio_websocket"}
    ran = subprocess.run(
        [sys.executable, "-c", probe.format(h=heavy)], capture_output=True, text=True, timeout=60, check=True
    )
    assert ran.stdout.strip() == "[]"
