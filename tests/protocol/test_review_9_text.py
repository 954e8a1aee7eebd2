"""Adversarial review of session 9 (rev9), protocol side: text the wire cannot carry is refused where the caller
makes it — also an eagerness (finding 1, fixed), an offer SDP (finding 2, fixed) and a non-ASCII tool name (finding
5, fixed) — and every text the wire can carry (non-ASCII, emoji, astral planes, NUL) still goes out as given."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rtengine
from rtengine.protocol._calls import multipart_body, raw_sdp_body
from rtengine.protocol._commands import SendText, SendToolOutput, client_event
from rtengine.protocol._payloads import encode

LONE = "\ud800"
#: Every code point UTF-8 can encode: all of Unicode but the surrogates (NUL and the astral planes included).
WIRE_TEXT = st.text(st.characters(exclude_categories=["Cs"]))


@given(WIRE_TEXT)
def test_any_text_the_wire_can_carry_is_accepted_and_sent_as_given(text: str) -> None:
    """No finding: NUL, emoji, astral planes and any non-ASCII text pass every text-taking command, and the
    event written for them decodes back to the same text."""
    sent = SendText(text)
    output = SendToolOutput("call_1", text)
    event = client_event({"type": "conversation.item.create", "note": text, text: "as a key"})
    config = rtengine.SessionConfig(instructions=text, extra={"tracing": {"workflow_name": text}})
    tool = rtengine.FunctionTool("lookup", description=text, parameters={"type": "object", "description": text})
    assert (sent.text, output.output, config.instructions, tool.description) == (text, text, text, text)
    wire = encode(event.payload).encode()  # what the socket writes: UTF-8
    assert json.loads(wire.decode()) == {"type": "conversation.item.create", "note": text, text: "as a key"}
    assert event.size == len(wire)


@pytest.mark.parametrize("eagerness", [LONE, "sometimes"])
def test_an_eagerness_the_api_does_not_take_is_refused(eagerness: str) -> None:
    """Finding 1: unchecked, it reached the socket's UTF-8 encoding and ended the conversation (ConnectionLost)."""
    with pytest.raises(rtengine.ConfigError, match="eagerness"):
        rtengine.TurnDetection("semantic_vad", eagerness=eagerness)  # type: ignore[arg-type]


def test_every_eagerness_the_api_takes_is_accepted() -> None:
    for eagerness in ("low", "medium", "high", "auto"):
        assert rtengine.TurnDetection("semantic_vad", eagerness=eagerness).to_json()["eagerness"] == eagerness


@pytest.mark.parametrize("make", [lambda: multipart_body(f"v=0\r\n{LONE}", "{}"), lambda: raw_sdp_body(f"v=0{LONE}")])
def test_a_call_body_refuses_an_offer_the_wire_cannot_carry(make: object) -> None:
    """Finding 2: the body's UTF-8 encoding raised a bare ``UnicodeEncodeError``."""
    with pytest.raises(rtengine.ConfigError, match=r"offer_sdp holds a lone surrogate \('\\ud800' at index"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("name", ["名前", "café", "x²"])
def test_a_tool_name_outside_ascii_is_refused_as_the_message_says(name: str) -> None:
    """Finding 5: ``str.isalnum`` let non-ASCII letters and digits through, which the API refuses."""
    with pytest.raises(rtengine.ConfigError, match=r"\[A-Za-z0-9_-\]"):
        rtengine.FunctionTool(name)


@given(st.text())
def test_an_event_always_encodes_to_utf8_and_decodes_to_what_it_held(text: str) -> None:
    """Finding 10: a lone surrogate (only a server's text can hold one: JSON lets it escape it) goes out escaped and
    comes back the same; text without one is rendered as before, non-ASCII kept as is."""
    event = {"type": "conversation.item.create", "item": {"content": [{"type": "input_text", "text": text}]}}
    wire = encode(event)
    assert json.loads(wire.encode().decode()) == event
    try:
        text.encode()
    except UnicodeEncodeError:
        assert wire.isascii()  # escaped, as a server sent it
    else:
        assert wire == json.dumps(event, separators=(",", ":"), ensure_ascii=False)
