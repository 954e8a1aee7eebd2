"""Secrets a hostile server hides from a plain search: in the ``Location`` of a 2xx answer, behind JSON ``\\u``
escapes, in an exception's chain or ``args`` (issue #15, finding 2, tried harder)."""

from __future__ import annotations

import json
import re
import string
from urllib.parse import unquote

import pytest
from helpers import exception_chain
from hypothesis import given
from hypothesis import strategies as st

import rtengine
from rtengine.protocol._calls import interpret_call_response
from rtengine.protocol._errors import CallRejected, InvalidAnswer, InvalidLocation
from rtengine.protocol._secrets import Scrubber

KEY = "gw7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"  # no known shape: only the configured-key path catches it
ANSWER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.mark.parametrize(
    "location",
    [f"/v1/realtime/calls/{KEY}", f"/v1/realtime/calls/rtc_{KEY}{'x' * 130}", f"/v1/{KEY}/calls/\x01"],
)
def test_a_key_in_a_2xx_location_is_scrubbed_from_the_wholeexception_chain(location: str) -> None:
    with pytest.raises(InvalidLocation) as refused:
        interpret_call_response(201, {"location": location}, ANSWER, scrub=Scrubber([KEY]))
    assert "Location" in str(refused.value)
    assert KEY not in exception_chain(refused.value)


def test_a_key_in_an_undecodable_answer_is_not_carried_by_the_decode_error() -> None:
    body = KEY.encode() + b"\xff" + ANSWER
    with pytest.raises(InvalidAnswer, match="not UTF-8") as refused:
        interpret_call_response(201, {"location": "/v1/realtime/calls/rtc_1"}, body, scrub=Scrubber([KEY]))
    assert KEY not in exception_chain(refused.value)


def _escaped(text: str, every: int) -> str:
    """``text`` with every ``every``-th character written as a JSON ``\\uXXXX`` escape."""
    return "".join(f"\\u{ord(c):04x}" if i % every == 0 else c for i, c in enumerate(text))


@pytest.mark.parametrize("every", [1, 2, 7])
def test_a_json_escaped_key_in_an_error_body_is_gone_once_the_body_is_parsed(every: int) -> None:
    body = '{"error": {"message": "bad key ' + _escaped(KEY, every) + '", "code": "invalid_api_key"}}'
    with pytest.raises(CallRejected) as refused:
        interpret_call_response(401, {}, body.encode(), scrub=Scrubber([KEY]))
    message = json.loads(refused.value.body)["error"]["message"]
    assert message.startswith("bad key ")
    assert KEY not in message
    assert KEY not in exception_chain(refused.value)


def test_escapes_that_hide_no_secret_are_left_as_they_were() -> None:
    text = '{"message": "caf\\u00e9 \\u0041BC \\\\u0067w"}'
    assert Scrubber([KEY])(text) == text


@pytest.mark.parametrize("encoded", ["%67%77" + KEY[2:], "".join(f"%{ord(c):02X}" for c in KEY)])
def test_a_percent_encoded_key_in_server_text_is_gone(encoded: str) -> None:
    scrubbed = Scrubber([KEY])(f"could not route /v1/{encoded}/realtime")
    assert KEY not in unquote(scrubbed)
    assert scrubbed.startswith("could not route /v1/")


def _decoded(text: str) -> str:
    """Every JSON ``\\uXXXX`` and URL ``%XX`` escape decoded (the texts below hold no other backslash or ``%``)."""
    return unquote(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text))


plain_text = st.text(st.characters(blacklist_characters="\\%"))


@given(
    st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=48),
    plain_text,
    plain_text,
    st.lists(st.sampled_from(["plain", "json", "url"]), min_size=48, max_size=48),
)
def test_a_configured_key_escaped_any_which_way_is_gone(key: str, before: str, after: str, how: list[str]) -> None:
    written = "".join(
        c if way == "plain" else f"\\u{ord(c):04x}" if way == "json" else f"%{ord(c):02x}"
        for c, way in zip(key, how, strict=False)
    )
    assert key not in _decoded(Scrubber([key])(before + written + after))


@pytest.mark.parametrize(
    "query",
    ["api%2Dkey", "API-KEY", "subscription-key", "Subscription-Key", "x-api-key", "api-token", "access-token"],
)
def test_a_key_in_a_gateway_query_parameter_is_redacted_from_the_clients_repr(query: str) -> None:
    client = rtengine.RealtimeClient(f"https://gw.example/v1?{query}={KEY}&model=m", api_key="sk-configured-key-1")
    assert KEY not in repr(client)
    assert "model=m" in repr(client)
