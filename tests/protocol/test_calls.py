"""Call-creation rules: bodies, Location → call id, response interpretation (§2)."""

import email.parser
import email.policy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine import (
    CallNotFound,
    CallRejected,
    InvalidAnswer,
    InvalidCallId,
    InvalidLocation,
    InvalidSdp,
    SessionConfig,
)
from rtengine.protocol import (
    CALL_ID_MAX_LENGTH,
    call_id_from_location,
    call_retry_delay,
    check_sdp,
    interpret_call_response,
    interpret_hangup_response,
    is_retryable_status,
    multipart_body,
    parse_retry_after,
    raw_sdp_body,
    validate_call_id,
)

OFFER = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def _parts(content_type: str, body: bytes) -> list[tuple[str | None, str, bytes]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    assert message.is_multipart()
    assert not message.defects
    out = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        name = part.get_param("name", header="content-disposition")
        assert name is None or isinstance(name, str)
        out.append((name, part.get_content_type(), payload))
    return out


def test_sends_api_session_call_as_multipart_body() -> None:
    session = SessionConfig(instructions="hi").call_session_json()
    body = multipart_body(OFFER, session)
    assert body.content_type.startswith("multipart/form-data; boundary=")
    parts = _parts(body.content_type, body.content)
    assert [(name, ctype) for name, ctype, _ in parts] == [("sdp", "application/sdp"), ("session", "application/json")]
    assert parts[0][2].decode() == OFFER
    assert json.loads(parts[1][2]) == {"type": "realtime", "instructions": "hi", "model": "gpt-realtime"}
    assert not body.content.startswith(b"\r\n")  # no preamble
    assert b"filename" not in body.content


def test_fixed_boundary_gives_exact_bytes_and_rejects_collisions() -> None:
    body = multipart_body("S", "{}", boundary="b")
    assert body.content == (
        b'--b\r\nContent-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp\r\n\r\nS\r\n'
        b'--b\r\nContent-Disposition: form-data; name="session"\r\nContent-Type: application/json\r\n\r\n{}\r\n'
        b"--b--\r\n"
    )
    with pytest.raises(ValueError, match="boundary"):
        multipart_body("x--b", "{}", boundary="b")


def test_default_boundary_never_occurs_in_the_body() -> None:
    """An offer that happens to contain the default boundary gets a fresh one, and still parses into its parts."""
    first = multipart_body(OFFER, "{}")
    boundary = first.content_type.split("boundary=", 1)[1]
    hostile = OFFER + f"a=note:--{boundary}\r\n"
    body = multipart_body(hostile, "{}")
    assert body.content_type != first.content_type
    parts = _parts(body.content_type, body.content)
    assert parts[0][2].decode() == hostile
    assert parts[1][2] == b"{}"


def test_sends_sdp_offer_as_raw_body() -> None:
    body = raw_sdp_body(OFFER)
    assert body.content_type == "application/sdp"
    assert body.content == OFFER.encode()


@pytest.mark.parametrize(
    ("location", "call_id"),
    [
        ("/v1/realtime/calls/rtc_test", "rtc_test"),
        ("/v1/realtime/calls/calls/rtc_backend_test", "rtc_backend_test"),
        ("https://api.openai.com/v1/realtime/calls/rtc_u0_Dbq65nhak5eLjQZ73yhAy", "rtc_u0_Dbq65nhak5eLjQZ73yhAy"),
        ("/v1/realtime/calls/rtc_a/?x=rtc_b", "rtc_a"),
        ("/rtc_first/rtc_second", "rtc_second"),
    ],
)
def test_extracts_call_id_from_location(location: str, call_id: str) -> None:
    assert call_id_from_location(location) == call_id


def test_errors_when_location_is_missing() -> None:
    with pytest.raises(InvalidLocation, match="realtime call response missing Location"):
        call_id_from_location(None)


@pytest.mark.parametrize("location", ["/v1/realtime/calls", "/v1/realtime/calls?call_id=rtc_x", "/rtc_"])
def test_rejects_location_without_call_id(location: str) -> None:
    with pytest.raises(InvalidLocation, match="does not contain a call id"):
        call_id_from_location(location)


@pytest.mark.parametrize("location", ["/calls/rtc_ bad", "/calls/rtc_é", ""])
def test_rejects_invisible_or_non_ascii_location(location: str) -> None:
    with pytest.raises(InvalidLocation, match="invalid realtime call Location"):
        call_id_from_location(location)


@pytest.mark.parametrize("segment", ["rtc_a%2Fb", "rtc_a.b", "rtc_a;b", "rtc_" + "a" * CALL_ID_MAX_LENGTH])
def test_rejects_location_with_unusable_call_id(segment: str) -> None:
    with pytest.raises(InvalidLocation, match="unusable call id"):
        call_id_from_location(f"/v1/realtime/calls/{segment}")


@given(st.text(max_size=80))
def test_call_id_extraction_never_accepts_an_id_that_changes_a_url(location: str) -> None:
    try:
        call_id = call_id_from_location(location)
    except InvalidLocation:
        return
    assert validate_call_id(call_id) == call_id
    assert not set(call_id) & set("/?#&=%;:@ .+\\\"'<>")
    assert len(call_id) <= CALL_ID_MAX_LENGTH


def test_validate_call_id() -> None:
    assert validate_call_id("rtc_A-z_9") == "rtc_A-z_9"
    for bad in ("rtc_", "call_1", "rtc_a/b", "RTC_a", "rtc_a\n"):
        with pytest.raises(InvalidCallId):
            validate_call_id(bad)


def test_interpret_created_call() -> None:
    answer = interpret_call_response(201, {"location": "/v1/realtime/calls/rtc_ok"}, OFFER.encode())
    assert answer.call_id == "rtc_ok"
    assert answer.sdp == OFFER
    assert "v=0" not in repr(answer)


def test_interpret_server_error_mentions_high_demand_status_and_body() -> None:
    with pytest.raises(CallRejected, match="currently experiencing high demand") as info:
        interpret_call_response(500, {"retry-after": "3"}, b'{"error":"boom"}')
    assert info.value.status == 500
    assert info.value.body == '{"error":"boom"}'
    assert info.value.retry_after == 3.0
    assert "500" in str(info.value)
    assert "retry after 3 s" in str(info.value)


def test_interpret_redirect_is_an_error_not_a_call() -> None:
    with pytest.raises(CallRejected, match="redirect"):
        interpret_call_response(302, {"location": "/v1/realtime/calls/rtc_evil"}, b"")


def test_interpret_unauthorized() -> None:
    with pytest.raises(CallRejected, match="API key") as info:
        interpret_call_response(401, {}, b'{"error":{"code":"invalid_api_key"}}')
    assert info.value.status == 401


def test_interpret_non_utf8_and_non_sdp_answers() -> None:
    with pytest.raises(InvalidAnswer, match="failed to decode realtime call SDP response"):
        interpret_call_response(201, {"location": "/rtc_a"}, b"\xff\xfe")
    with pytest.raises(InvalidAnswer, match="v=0"):
        interpret_call_response(200, {"location": "/rtc_a"}, b"<html>")


def test_retry_rules() -> None:
    assert is_retryable_status(500)
    assert is_retryable_status(503)
    assert not is_retryable_status(429)
    assert not is_retryable_status(400)
    assert not is_retryable_status(401)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None


def test_retry_after_as_an_http_date_is_relative_to_now() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"  # 1445412480
    assert parse_retry_after(date, now=1445412480 - 30) == 30.0
    assert parse_retry_after(date, now=1445412480 + 5) == 0.0  # in the past: retry now
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000") is None  # no known zone
    assert parse_retry_after("Wed, 99 Foo 2015 07:28:00 GMT") is None
    assert parse_retry_after(date) == 0.0  # against the wall clock: long past


def _delay(attempt: int, status: int | None, retry_after: float | None, *, retries: int = 4) -> float | None:
    return call_retry_delay(
        attempt, retries, status=status, retry_after=retry_after, base=0.2, rand=lambda: 0.5, ceiling=10.0
    )


def test_call_retry_delay_backoff_retry_after_and_ceiling() -> None:
    # Transport errors and 5xx: the §3.4 backoff (jitter pinned to 1.0).
    assert _delay(1, None, None) == pytest.approx(0.2)
    assert _delay(3, 503, None) == pytest.approx(0.8)
    # Retry-After wins over the backoff, up to the ceiling; above it, no retry at all.
    assert _delay(1, 503, 2.5) == 2.5
    assert _delay(1, 503, 10.0) == 10.0
    assert _delay(1, 503, 30.0) is None
    # 429 only with Retry-After; other 4xx never.
    assert _delay(1, 429, None) is None
    assert _delay(1, 429, 1.0) == 1.0
    assert _delay(1, 400, 1.0) is None
    assert _delay(1, 404, None) is None
    # The retry budget.
    assert _delay(4, 500, None) is not None
    assert _delay(5, 500, None) is None
    assert _delay(1, None, None, retries=0) is None


def test_interpret_truncated_bodies() -> None:
    with pytest.raises(InvalidAnswer, match="too large"):
        interpret_call_response(201, {"location": "/rtc_a"}, OFFER.encode(), truncated=True)
    with pytest.raises(CallRejected) as info:
        interpret_call_response(
            503, {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, b"x" * 10, truncated=True, now=1445412480
        )
    assert info.value.body == "x" * 10 + " [truncated]"
    assert info.value.retry_after == 10.0
    with pytest.raises(CallRejected) as info:
        interpret_call_response(500, {}, b"y" * 5000)
    assert info.value.body == "y" * 2000 + " [truncated]"


def test_interpret_hangup_response() -> None:
    interpret_hangup_response(200, {}, b"")
    interpret_hangup_response(204, {}, b"")
    not_found = b'{"error":{"message":"no such call","type":"invalid_request_error","code":"call_id_not_found"}}'
    with pytest.raises(CallNotFound, match="call_id_not_found") as info:
        interpret_hangup_response(404, {}, not_found)
    assert info.value.status == 404
    assert isinstance(info.value, CallRejected)
    with pytest.raises(CallRejected) as other:
        interpret_hangup_response(404, {}, b"<html>not here</html>")
    assert type(other.value) is CallRejected
    assert other.value.status == 404
    with pytest.raises(CallRejected, match="API key"):
        interpret_hangup_response(401, {}, b"{}")
    with pytest.raises(CallRejected, match="server error") as busy:
        interpret_hangup_response(503, {"retry-after": "2"}, b"busy")
    assert busy.value.retry_after == 2.0
    for body in (b"[]", b'{"error": "x"}', b'{"error": {"code": 7}}', b"\xff", b"[" * 100_000):
        with pytest.raises(CallRejected) as weird:
            interpret_hangup_response(404, {}, body)
        assert type(weird.value) is CallRejected


def test_check_sdp() -> None:
    assert check_sdp(OFFER) == OFFER
    with pytest.raises(InvalidSdp, match="v=0"):
        check_sdp("hello")
    with pytest.raises(InvalidSdp, match="m="):
        check_sdp("v=0\r\ns=-\r\n")
