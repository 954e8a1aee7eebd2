"""SIP call control, pure: the accept / reject / refer URLs and bodies, and how their answers become errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine import CallNotFound, CallRejected, ConfigError, InvalidCallId
from rtengine.protocol._sip import control_url, interpret_control_response, refer_body, reject_body

NOT_FOUND = b'{"error":{"message":"No session found for the provided call_id","type":"invalid_request_error",'
NOT_FOUND += b'"code":"call_id_not_found","param":""}}'


def test_urls_validate_the_call_id_first() -> None:
    base = "https://api.openai.com/v1/realtime/calls"
    assert control_url(base, "rtc_abc", "accept") == f"{base}/rtc_abc/accept"
    assert control_url(base + "/", "rtc_abc", "refer") == f"{base}/rtc_abc/refer"
    for bad in ("rtc_a/../b", "rtc_a?x=1", "abc", "rtc_", "rtc_" + "a" * 200):
        with pytest.raises(InvalidCallId):
            control_url(base, bad, "reject")


def test_bodies() -> None:
    assert json.loads(reject_body(None)) == {}
    assert json.loads(reject_body(486)) == {"status_code": 486}
    assert json.loads(refer_body("tel:+14155550123")) == {"target_uri": "tel:+14155550123"}
    assert json.loads(refer_body("sip:agent@example.com")) == {"target_uri": "sip:agent@example.com"}
    for status in (200, 399, 700, True):
        with pytest.raises(ConfigError):
            reject_body(status)
    for uri in ("http://x", "tel:", "tel:+1 415", "sip:a\r\nVia: x", ""):
        with pytest.raises(ConfigError):
            refer_body(uri)


def test_answers() -> None:
    interpret_control_response("accept", 200, {}, b"")
    interpret_control_response("refer", 204, {}, b"")
    with pytest.raises(CallNotFound, match="accept failed: call_id_not_found") as caught:
        interpret_control_response("accept", 404, {}, NOT_FOUND)
    assert caught.value.status == 404
    with pytest.raises(CallRejected, match=r"was rejected \(HTTP 404") as other:
        interpret_control_response("refer", 404, {}, b"not found")
    assert not isinstance(other.value, CallNotFound)
    with pytest.raises(CallRejected, match=r"server error \(HTTP 503.*retry after 2 s") as busy:
        interpret_control_response("reject", 503, {"retry-after": "2"}, b"busy")
    assert busy.value.retry_after == 2.0
    with pytest.raises(CallRejected, match="check the API key"):
        interpret_control_response("hangup", 401, {}, b"")


@given(st.integers(100, 599), st.binary(max_size=200))
def test_every_non_2xx_raises_a_call_rejected(status: int, body: bytes) -> None:
    if 200 <= status <= 299:
        interpret_control_response("accept", status, {}, body)
        return
    with pytest.raises(CallRejected) as caught:
        interpret_control_response("accept", status, {}, body)
    assert caught.value.status == status
