"""Every ```python block of README.md runs as written, against the local server, so the examples cannot rot.

A block runs the way a user would run it: its module-level code is executed (top-level ``await``/``async with``
allowed, as in ``python -m asyncio`` or a notebook), with the environment pointing at the local server
(``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_WEBHOOK_SECRET``: the plugin's ``realtime_env``), in a directory
holding a ``hello.wav``. The names the README leaves to the reader's app are given, and are the whole wrapper:

* ``client`` — an ``rtengine.RealtimeClient`` bound to the server; ``session`` — ``SessionConfig(instructions=…)``;
  ``nursery`` — a nursery the app owns;
* ``send_to_browser(answer_sdp, call_id)``, ``run_tool(name) -> str``, ``play(pcm)`` — record what they get.

Then, if the block defines an entry point, the test drives it as its app would: ``main(offer_sdp)`` is awaited with
a real SDP offer; ``on_webhook(headers, body)`` is the handler of a webhook endpoint the server's simulated phone
rings. A block that defines ``test_…`` functions is a user's test file: it is run by pytest (a subprocess, with
``trio_mode`` and rtengine's plugin) and must pass. A block that raises, hangs (each has a deadline) or does not do
what its comments say fails its test.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import trio
from loopback import Reply, serving_routes
from sip_helpers import SECRET

import rtengine
from rtengine.adapters import HttpRequest
from rtengine.server import ToolScript
from rtengine.testing import RealtimeTestServer

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(text: str) -> list[str]:
    """Each ```python block, preceded by blank lines so that its line numbers are the README's (tracebacks point
    at the README line that failed)."""
    found = re.finditer(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    return ["\n" * text.count("\n", 0, m.start(1)) + m.group(1) for m in found]


BLOCKS = _python_blocks(README.read_text(encoding="utf-8"))
TOOL_OUTPUT = '{"forecast": "sunny"}'


def _block_id(source: str) -> str:
    """``README.md:<line>``, the line of the block's first line of code."""
    return f"README.md:{len(source) - len(source.lstrip(chr(10))) + 1}"


@dataclass
class App:
    """The reader's side of an example: what its placeholders received."""

    browser: list[tuple[str, str | None]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    played: list[bytes] = field(default_factory=list)

    def send_to_browser(self, answer_sdp: str, call_id: str | None) -> None:
        self.browser.append((answer_sdp, call_id))

    def run_tool(self, name: str) -> str:
        self.tools.append(name)
        return TOOL_OUTPUT

    def play(self, pcm: bytes) -> None:
        self.played.append(pcm)


def _write_hello_wav(path: Path) -> None:
    """One second of a 440 Hz tone, PCM16 mono 24 kHz (what ``webrtc.wav_source`` reads)."""
    samples = [int(8000 * math.sin(2 * math.pi * 440 * n / 24000)) for n in range(24000)]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(24000)
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))


async def _run_module_code(source: str, namespace: dict[str, Any]) -> None:
    code = compile(source, str(README), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # the README block, as a user pastes it
    if inspect.iscoroutine(result):
        await result


async def _ring(server: RealtimeTestServer, on_webhook: Callable[[dict[str, str], bytes], int]) -> Any:
    """A webhook endpoint whose handler is the README's ``on_webhook``; the simulated phone rings it once."""

    async def route(request: HttpRequest) -> Reply:
        return on_webhook(request.headers, request.body), [], b""

    async with serving_routes(route) as port:
        return await server.server.sip.place_call(f"http://127.0.0.1:{port}/hook")


async def _run_as_test_file(source: str, pytester: pytest.Pytester) -> None:
    """A README test file, run by pytest in a subprocess (its own trio run) the way a trio app's project runs it."""
    pytester.makefile(".ini", pytest="[pytest]\ntrio_mode = true\naddopts = -p no:asyncio -p no:cacheprovider\n")
    pytester.path.joinpath("test_readme.py").write_text(source.lstrip("\n"), encoding="utf-8")
    installed = any(ep.name == "rtengine" for ep in entry_points(group="pytest11"))
    plugin = [] if installed else ["-p", "_rtengine_pytest"]
    result = await trio.to_thread.run_sync(lambda: pytester.runpytest_subprocess(*plugin, timeout=60))
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert set(outcomes) <= {"passed", "warnings"}, result.stdout.str()


def test_the_readme_has_the_examples_this_file_drives() -> None:
    assert len(BLOCKS) >= 4
    assert sum("async def main(offer_sdp" in b for b in BLOCKS) == 1
    assert sum("def on_webhook(" in b for b in BLOCKS) == 1


@pytest.mark.realtime_server(tool_call=ToolScript("lookup"), webhook_secret=SECRET)
@pytest.mark.parametrize("source", BLOCKS, ids=[_block_id(b) for b in BLOCKS])
async def test_the_readme_example_runs_as_written(
    source: str,
    realtime_env: None,
    realtime_server: RealtimeTestServer,
    realtime_client: rtengine.RealtimeClient,
    offer_sdp: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    _write_hello_wav(tmp_path / "hello.wav")
    app = App()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            namespace: dict[str, Any] = {
                "__name__": "readme_example",
                "client": realtime_client,
                "session": rtengine.SessionConfig(instructions="Be brief."),
                "nursery": nursery,
                "send_to_browser": app.send_to_browser,
                "run_tool": app.run_tool,
                "play": app.play,
            }
            if re.search(r"^(async )?def test_", source, flags=re.MULTILINE):
                await _run_as_test_file(source, request.getfixturevalue("pytester"))
                return
            await _run_module_code(source, namespace)
            if "main" in namespace:
                await namespace["main"](offer_sdp)
                answer_sdp, call_id = app.browser[0]
                assert answer_sdp.startswith("v=0")
                assert call_id in [c.call_id for c in realtime_server.record.calls]
                assert app.tools == ["lookup"]  # the scripted tool call was answered …
                assert TOOL_OUTPUT in capsys.readouterr().out  # … and the model's reply quotes it
            if "on_webhook" in namespace:
                sip = await _ring(realtime_server, namespace["on_webhook"])
                await sip.ended.wait()  # the caller pressed 5: the example transferred the call
                assert sip.refer_to == "tel:+14155550100"
    if "webrtc.Media(" in source:
        assert app.played  # the call's audio reached play()
        assert realtime_server.record.calls[0].audio_frames_in > 0  # hello.wav reached the server
