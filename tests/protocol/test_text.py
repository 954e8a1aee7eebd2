"""Text the wire cannot carry is refused where the caller makes the command (``check_text``): a lone surrogate or
a value that is not a ``str``, in every text-taking command and session field."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rtengine
from rtengine.protocol._commands import CancelResponse, SendText, SendToolOutput, client_event
from rtengine.protocol._text import check_text

LONE = "\ud800"


@given(st.text())
def test_text_utf8_can_encode_is_returned_as_is(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        with pytest.raises(rtengine.ConfigError, match="lone surrogate"):
            check_text(text, "the text")
    else:
        assert check_text(text, "the text") is text


def test_the_error_names_the_code_point_and_its_place_never_the_text() -> None:
    with pytest.raises(rtengine.ConfigError) as info:
        check_text("secret words \udfff more", "send_text's text")
    assert str(info.value).startswith("send_text's text holds a lone surrogate ('\\udfff' at index 13)")
    assert "secret" not in str(info.value)
    with pytest.raises(rtengine.ConfigError, match="must be a str, got bytes"):
        check_text(b"bytes", "send_text's text")


@pytest.mark.parametrize(
    "make",
    [
        lambda: SendText(f"a{LONE}"),
        lambda: SendToolOutput(f"call{LONE}", "{}"),
        lambda: SendToolOutput("call_1", LONE),
        lambda: CancelResponse(LONE),
        lambda: client_event({"type": "conversation.item.create", "x": [LONE]}),
        lambda: rtengine.SessionConfig(instructions=LONE),
        lambda: rtengine.SessionConfig(voice=LONE),
        lambda: rtengine.SessionConfig(transcription_model=LONE),
        lambda: rtengine.SessionConfig(extra={"tracing": {"name": LONE}}),
        lambda: rtengine.FunctionTool("lookup", description=LONE),
        lambda: rtengine.FunctionTool("lookup", parameters={"type": "object", "description": LONE}),
    ],
)
def test_every_text_taking_command_refuses_a_lone_surrogate(make: object) -> None:
    with pytest.raises(rtengine.ConfigError, match="lone surrogate"):
        make()  # type: ignore[operator]


def test_non_ascii_text_is_accepted_everywhere() -> None:
    assert SendText("grüße 👋").text == "grüße 👋"
    assert rtengine.SessionConfig(instructions="répondez en français").instructions == "répondez en français"
    assert client_event({"type": "x", "note": "👋"}).size == len('{"type":"x","note":"👋"}'.encode())
