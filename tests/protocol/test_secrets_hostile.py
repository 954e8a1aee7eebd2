"""Secrets a hostile server hides from a plain search: in the ``Location`` of a 2xx answer, behind JSON ``\\u``
escapes, in an exception's chain or ``args`` (issue #15, finding 2, tried harder)."""

from __future__ import annotations

import pytest

from rtengine.protocol._calls import interpret_call_response
from rtengine.protocol._errors import InvalidAnswer, InvalidLocation
from rtengine.protocol._secrets import Scrubber

KEY = "gw7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"  # no known shape: only the configured-key path catches it
ANSWER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def _chain(exc: BaseException | None) -> str:
    """Everything an exception carries: str, repr, args, and its cause/context chain."""
    seen = ""
    while exc is not None:
        seen += f"{exc}|{exc!r}|{exc.args!r}|"
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.mark.parametrize(
    "location",
    [f"/v1/realtime/calls/{KEY}", f"/v1/realtime/calls/rtc_{KEY}{'x' * 130}", f"/v1/{KEY}/calls/\x01"],
)
def test_a_key_in_a_2xx_location_is_scrubbed_from_the_whole_chain(location: str) -> None:
    with pytest.raises(InvalidLocation) as refused:
        interpret_call_response(201, {"location": location}, ANSWER, scrub=Scrubber([KEY]))
    assert "Location" in str(refused.value)
    assert KEY not in _chain(refused.value)


def test_a_key_in_an_undecodable_answer_is_not_carried_by_the_decode_error() -> None:
    body = KEY.encode() + b"\xff" + ANSWER
    with pytest.raises(InvalidAnswer, match="not UTF-8") as refused:
        interpret_call_response(201, {"location": "/v1/realtime/calls/rtc_1"}, body, scrub=Scrubber([KEY]))
    assert KEY not in _chain(refused.value)
