"""The SDK validator the suite-wide fixture uses finds what an SDK-typed client would choke on."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sdk_events import assert_sdk_valid, sdk_problems

#: ``response.content_part.added`` as the real API sent it (pydantic/pydantic-ai, tests/realtime/cassettes/
#: test_openai_ws/test_text_in_audio_out_turn.yaml, commit d6d66de54d, MIT).
PART_ADDED: dict[str, Any] = {
    "type": "response.content_part.added",
    "event_id": "event_E6U0uHgurzTLCHcAnP4Uj",
    "response_id": "resp_E6U0utdfn8rQdwHYPNrmv",
    "item_id": "item_E6U0uHIVQSnuTXndsNjl4",
    "output_index": 0,
    "content_index": 0,
    "part": {"type": "audio", "transcript": ""},
}


def test_a_recorded_event_is_valid() -> None:
    assert sdk_problems(PART_ADDED) == []
    assert_sdk_valid(PART_ADDED)


def test_wrong_part_type_names_the_event_and_the_field() -> None:
    (problem,) = sdk_problems({**PART_ADDED, "part": {"type": "output_audio", "transcript": ""}})
    assert "'response.content_part.added'" in problem
    assert "event_E6U0uHgurzTLCHcAnP4Uj" in problem
    assert "part.type" in problem


def test_unknown_fields_are_rejected_at_any_depth() -> None:
    problems = sdk_problems({**PART_ADDED, "extra": 1, "part": {"type": "audio", "transcript": "", "deep": 2}})
    assert sorted(p.rsplit(" ", 1)[1] for p in problems) == ["extra", "part.deep"]


def test_null_where_the_sdk_needs_a_string_and_unknown_types_are_problems() -> None:
    cleared = {"type": "output_audio_buffer.cleared", "event_id": "event_1", "response_id": None}
    assert any("response_id" in p for p in sdk_problems(cleared))
    assert sdk_problems({"type": "rtengine.unknown_event", "event_id": "event_2"})
    assert sdk_problems("<malformed>")


def test_fields_the_real_api_sends_beyond_the_sdk_are_allowed_only_where_recorded() -> None:
    delta = {
        "type": "response.output_text.delta",
        "event_id": "event_3",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
        "obfuscation": "abc",
    }
    assert sdk_problems(delta) == []
    assert sdk_problems({**PART_ADDED, "obfuscation": "abc"}) != []


SUBPROCESS_SERVER = """
from rtengine.server import ConnectionRecord, ServerRecord
record = ServerRecord()
conn = ConnectionRecord("direct", "/v1/realtime", {}, {})
conn.frames_out.append({"type": "rate_limits.updated", "event_id": "event_sub", "rate_limits": []})
record.connections.append(conn)
"""


def test_subprocess_servers_are_checked_too() -> None:
    """A local server in a subprocess of the suite leaves what it sent for the fixture (which checks it)."""
    events_dir = Path(os.environ["RTENGINE_TEST_EVENTS_DIR"])
    subprocess.run([sys.executable, "-c", SUBPROCESS_SERVER], check=True, timeout=30)
    (dump,) = events_dir.glob("*.jsonl")
    assert json.loads(dump.read_text())["event"]["event_id"] == "event_sub"
