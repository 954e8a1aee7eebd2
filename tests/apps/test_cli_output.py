"""What ``rtengine demo`` prints (issue 13, finding 6): rich tables and a live progress line on a terminal, plain
text otherwise, ``--json`` for machines, one naming rule for events, and no silent pause after the reply."""

import json
import pathlib
import re

import trio
from cli_helpers import run_cli, run_on_a_terminal

#: An event name: a server event's wire type, or ``rtengine.<what>`` for rtengine's own events.
EVENT_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")


async def test_a_terminal_gets_rich_tables_and_a_live_progress_line(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(90):
        status, shown = await run_on_a_terminal("demo", "--seconds", "1", "--wav-out", str(tmp_path / "out.wav"))
    text = shown.decode(errors="replace")
    assert status == 0, text[-3000:]
    assert "\x1b[" in text  # styled
    assert "┏" in text  # a rich table's frame
    assert re.search(r"\d+\.\d s  \S+  events \d+  audio frames sent \d+, received \d+", text)  # the progress line
    assert "result: ok" in text


async def test_a_pipe_gets_plain_text_with_the_summary(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(90):
        done = await run_cli("demo", "--seconds", "3", "--wav-out", str(tmp_path / "out.wav"))
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "\x1b[" not in out
    assert "┏" not in out
    lines = out.splitlines()
    assert "phase                  ms since start" in lines
    assert lines[-1] == "result: ok"
    assert not any(line.lstrip().startswith("{") for line in lines)  # no JSON repeat of the table
    # after the reply, the rest of the 3 s source is announced, not waited for in silence
    reply = next(i for i, line in enumerate(lines) if re.search(r" ms  response\.done", line))
    playing = next(i for i, line in enumerate(lines) if line.startswith("reply received; sending the rest of the aud"))
    sent = next(i for i, line in enumerate(lines) if line.startswith("audio source sent; waiting for the reply audio"))
    assert reply < playing < sent


async def test_json_is_one_document_and_events_follow_one_naming_rule(tmp_path: pathlib.Path) -> None:
    with trio.fail_after(90):
        done = await run_cli("demo", "--json", "--seconds", "1", "--wav-out", str(tmp_path / "out.wav"))
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.count(b"\n") == 1
    report = json.loads(done.stdout)
    assert (report["result"], report["status"], report["command"], report["transport"]) == ("ok", 0, "demo", "webrtc")
    names = [event["type"] for event in report["events"]]
    assert all(EVENT_NAME.match(name) for name in names), names
    assert "response.done" in names
    assert names[-1] == "rtengine.closed"
    assert {"answer", "session_updated", "closed"} <= set(report["timeline_ms"])
    assert report["counters"]["texts_sent"] == 1
