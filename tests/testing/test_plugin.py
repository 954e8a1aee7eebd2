"""rtengine's pytest plugin, used the way a trio app's own test suite uses it: small user test files, run by pytest
in a subprocess with the plugin loaded (a trio test cannot start another trio run in-process), in a project
configured the way a trio app's is (``trio_mode``, strict markers, warnings as errors), and their outcomes."""

import textwrap
from collections.abc import Callable
from importlib.metadata import entry_points

import pytest

#: The ``run_user_tests`` fixture: files by name, then pytest arguments.
RunUserTests = Callable[..., pytest.RunResult]


INI = """\
[pytest]
trio_mode = true
addopts = --strict-markers --strict-config -p no:asyncio -p no:cacheprovider --import-mode=importlib
filterwarnings =
    error
    ignore:'AbstractChildWatcher' is deprecated.*:DeprecationWarning
"""


def plugin_is_installed() -> bool:
    """True once rtengine is installed with its ``pytest11`` entry point (then pytest loads the plugin itself)."""
    return any(ep.name == "rtengine" for ep in entry_points(group="pytest11"))


@pytest.fixture
def run_user_tests(pytester: pytest.Pytester) -> RunUserTests:
    """Write ``files`` (name → source) into a fresh project and run pytest on it in a subprocess."""
    pytester.makefile(".ini", pytest=INI)

    def run(files: dict[str, str], *args: str) -> pytest.RunResult:
        for name, source in files.items():
            path = pytester.path.joinpath(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source, encoding="utf-8")
        plugin = [] if plugin_is_installed() else ["-p", "_rtengine_pytest"]
        return pytester.runpytest_subprocess(*plugin, *args, timeout=120)

    return run


CONVERSATION = """
import trio
import rtengine
from rtengine.events import OutputTranscriptDone


async def ask(client, text):
    async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
        await conv.send_text(text)
        await conv.request_response()
        async for event in conv.events:
            if isinstance(event, OutputTranscriptDone):
                return event.transcript
"""


def test_the_fixtures_serve_a_project_its_conftest_and_an_app_that_reads_the_environment(
    run_user_tests: RunUserTests,
) -> None:
    """The client fixture talks to the server fixture and the record shows what the app sent; a wrong expectation
    fails the user's test (the fixtures do not make tests pass); a directory's ``conftest.py`` overrides the
    server's options for its tests only; ``realtime_env`` serves an app that builds its own client."""
    user_test = CONVERSATION + textwrap.dedent("""
        async def test_echo(realtime_client, realtime_server):
            with trio.fail_after(10):
                assert await ask(realtime_client, "hello") == "You said: hello"
            sent = realtime_server.client_events("conversation.item.create")
            assert sent[0]["item"]["content"][0]["text"] == "hello"
            assert realtime_server.base_url.startswith("http://127.0.0.1:")

        async def test_wrong_expectation(realtime_client):
            with trio.fail_after(10):
                assert await ask(realtime_client, "hello") == "something else"
    """)
    env_test = CONVERSATION + textwrap.dedent("""
        import os

        async def test_from_env(realtime_env, realtime_server):
            assert os.environ["OPENAI_BASE_URL"] == realtime_server.base_url
            async with rtengine.RealtimeClient() as client:  # what the app does in production
                with trio.fail_after(10):
                    assert await ask(client, "env") == "You said: env"
    """)
    conftest = textwrap.dedent("""
        import pytest
        from rtengine.server import ServerOptions

        @pytest.fixture
        def realtime_server_options():
            return ServerOptions(api_key="sk-project", reply_text="project-wide", delta_interval=0.0)
    """)
    options_test = CONVERSATION + textwrap.dedent("""
        async def test_project_options(realtime_client, realtime_server):
            assert realtime_server.api_key == "sk-project"
            with trio.fail_after(10):
                assert await ask(realtime_client, "hi") == "project-wide"
            assert realtime_server.record.directs()[0].headers["authorization"] == "Bearer sk-project"
    """)
    files = {
        "test_app.py": user_test,
        "test_env.py": env_test,
        "configured/conftest.py": conftest,
        "configured/test_options.py": options_test,
    }
    result = run_user_tests(files)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError*You said: hello*something else*"])


def test_the_marker_sets_server_options_and_faults_per_test(run_user_tests: RunUserTests) -> None:
    user_test = CONVERSATION + textwrap.dedent("""
        import pytest
        from rtengine.events import Closed

        pytestmark = pytest.mark.realtime_server(reply_text="from the module")

        async def test_module_marker(realtime_client):
            with trio.fail_after(10):
                assert await ask(realtime_client, "hi") == "from the module"

        @pytest.mark.realtime_server(reply_text="Sunny.")
        async def test_nearest_marker_wins(realtime_client, realtime_server):
            assert realtime_server.options.reply_text == "Sunny."
            with trio.fail_after(10):
                assert await ask(realtime_client, "weather?") == "Sunny."

        @pytest.mark.realtime_server(close_after_events=2)
        async def test_a_fault(realtime_client, realtime_server):
            assert realtime_server.server.faults.close_after_events == 2
            with trio.fail_after(10):
                async with rtengine.open_conversation(realtime_client, rtengine.SessionConfig()) as conv:
                    events = [event async for event in conv.events]
            assert events[-1] == Closed("transport_closed", 1000, "rtengine local server: close_after_events")

        @pytest.mark.realtime_server(sideband_delay=1)
        async def test_a_misspelt_knob(realtime_server):
            pass
    """)
    result = run_user_tests({"test_marked.py": user_test})
    result.assert_outcomes(passed=3, errors=1)  # the misspelt knob fails the setup, not the test
    result.stdout.fnmatch_lines(["*unknown realtime_server knob(s) sideband_delay*"])


def test_the_helpers_script_a_live_call(run_user_tests: RunUserTests) -> None:
    """A media call held by rtengine (as a voice app does): an injected event, a dropped sideband (re-joined), a
    delayed join; all offline."""
    user_test = textwrap.dedent("""
        import trio
        import rtengine
        from rtengine import webrtc
        from rtengine.events import RateLimits, SessionUpdated, SidebandLost, SidebandRestored

        async def until(conv, kind):
            async for event in conv.events:
                if isinstance(event, kind):
                    return event
            raise AssertionError(f"no {kind.__name__}")

        async def test_script_a_call(realtime_client, realtime_server):
            limits = {"type": "rate_limits.updated", "rate_limits": [{"name": "tokens", "limit": 10, "remaining": 3}]}
            with trio.fail_after(20):
                async with webrtc.open_media_engine(loopback=True) as engine:
                    media = webrtc.Media(engine, source=webrtc.tone_source(440, seconds=0.2))
                    session = rtengine.SessionConfig()
                    async with rtengine.open_conversation(realtime_client, session, media=media) as conv:
                        sent = await realtime_server.inject(limits)  # waits for the sideband
                        assert (await until(conv, RateLimits)).event_id == sent["event_id"]
                        realtime_server.delay_next_join(0.3)
                        assert await realtime_server.drop_sideband(code=1011, reason="blip") == 1
                        assert await until(conv, SidebandLost) == SidebandLost(1011, "blip")
                        restored = await until(conv, SidebandRestored)
                        assert restored.gap_ms >= 300  # the re-join waited for the delayed handshake
                        await conv.send_text("after the blip")
                        await realtime_server.wait_for_client_event("conversation.item.create", call_id=conv.call_id)
                    assert len(realtime_server.record.joins(conv.call_id)) == 2
    """)
    run_user_tests({"test_call.py": user_test}).assert_outcomes(passed=1)


def test_loading_the_plugin_imports_neither_the_server_nor_aiortc(run_user_tests: RunUserTests) -> None:
    """A project that installs rtengine pays no rtengine, httpx or aiortc import in tests that do not use the
    fixtures; the marker is registered (the run uses ``--strict-markers``)."""
    user_test = textwrap.dedent("""
        import sys

        def test_nothing_heavy_loaded(pytestconfig):
            assert "aiortc" not in sys.modules
            assert "rtengine" not in sys.modules
            assert "httpx" not in sys.modules
            assert any(line.startswith("realtime_server(") for line in pytestconfig.getini("markers"))
    """)
    run_user_tests({"test_light.py": user_test}).assert_outcomes(passed=1)


def test_the_plugin_module_exports_what_it_lists() -> None:
    import rtengine.testing

    for name in rtengine.testing.__all__:
        assert hasattr(rtengine.testing, name), name
    assert rtengine.testing.RealtimeTestServer.__name__ == "RealtimeTestServer"
