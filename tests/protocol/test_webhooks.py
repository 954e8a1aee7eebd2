"""Incoming-call webhook verification (Standard Webhooks): valid, tampered, skewed, replayed, malformed — never a
false accept. The payload shape is the openai package's ``RealtimeCallIncomingWebhookEvent`` (openai 3.57)."""

from __future__ import annotations

import base64
import functools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.webhooks import RealtimeCallIncomingWebhookEvent
from webhook_headers import hand_signed

import rtengine
from rtengine.protocol._webhooks import incoming_call_payload
from rtengine.webhooks import (
    IncomingCall,
    ReplayStore,
    WebhookError,
    WebhookEventTypeError,
    WebhookPayloadError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookSigner,
    WebhookTimestampError,
    verify,
)

KEY = b"rtengine-test-webhook-key-32byte"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER = "whsec_" + base64.b64encode(b"another-key-entirely-32-bytes!!!").decode()
NOW = 1_764_460_800
CALL_ID = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
SIP = [("From", '"Ada" <sip:+15551230000@sip.example>'), ("To", "<sip:+15559870000@sip.api.openai.com>")]
BODY = json.dumps(incoming_call_payload("evt_1", CALL_ID, SIP, NOW)).encode()


sign = functools.partial(hand_signed, key=KEY, timestamp=NOW)


def test_the_payload_builder_matches_the_sdk_type() -> None:
    event = RealtimeCallIncomingWebhookEvent.model_validate(json.loads(BODY))
    assert event.data.call_id == CALL_ID
    assert not event.model_extra
    assert not event.data.model_extra


def test_a_valid_delivery_gives_the_call() -> None:
    call = verify(sign(BODY), BODY, SECRET, now=NOW)
    assert isinstance(call, IncomingCall)
    assert call.call_id == CALL_ID
    assert [(h.name, h.value) for h in call.sip_headers] == SIP
    assert call.header("from") == SIP[0][1]
    assert call.header("x-missing") is None
    assert (call.sip_media_security, call.event_id, call.created_at) == ("srtp", "evt_1", NOW)
    assert (call.webhook_id, call.timestamp) == ("wh_1", NOW)


def test_headers_in_any_case_text_body_and_rotated_signatures() -> None:
    headers = {k.upper(): v for k, v in sign(BODY).items()}
    stale = sign(BODY, key=b"old-key-rotated-away-32-bytes!!!")["webhook-signature"]
    headers["WEBHOOK-SIGNATURE"] = f"v2,abc {stale} {headers['WEBHOOK-SIGNATURE']}"
    assert verify(headers, BODY.decode(), SECRET, now=NOW).call_id == CALL_ID


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(header: str) -> None:
    headers = sign(BODY)
    del headers[header]
    with pytest.raises(WebhookSignatureError, match=header):
        verify(headers, BODY, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-id", "wh_2"),  # the id is signed
        ("webhook-timestamp", str(NOW + 1)),  # so is the timestamp
        ("webhook-timestamp", "12.5"),
        ("webhook-timestamp", "-5"),
        ("webhook-signature", "v1,not base64!"),
        ("webhook-signature", "v1"),
        ("webhook-signature", "v2," + base64.b64encode(b"x" * 32).decode()),
        ("webhook-signature", "v1," + base64.b64encode(b"x" * 32).decode()),
    ],
)
def test_each_tampered_header_is_refused(header: str, value: str) -> None:
    headers = {**sign(BODY), header: value}
    with pytest.raises(WebhookSignatureError):
        verify(headers, BODY, SECRET, now=NOW)


def test_a_tampered_body_and_a_wrong_secret_are_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="no webhook signature matches"):
        verify(sign(BODY), BODY.replace(b"rtc_u1", b"rtc_u2"), SECRET, now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify(sign(BODY), BODY, OTHER, now=NOW)


@pytest.mark.parametrize(("offset", "ok"), [(-300, True), (300, True), (-301, False), (301, False), (-86400, False)])
def test_skewed_timestamps(offset: int, ok: bool) -> None:
    headers = sign(BODY, timestamp=NOW + offset)
    if ok:
        assert verify(headers, BODY, SECRET, now=NOW).timestamp == NOW + offset
        return
    with pytest.raises(WebhookTimestampError) as caught:
        verify(headers, BODY, SECRET, now=NOW)
    assert caught.value.skew == offset
    assert ("old" if offset < 0 else "future") in str(caught.value)


def test_tolerance_is_the_callers() -> None:
    headers = sign(BODY, timestamp=NOW - 20)
    with pytest.raises(WebhookTimestampError):
        verify(headers, BODY, SECRET, 10, now=NOW)
    assert verify(headers, BODY, SECRET, 30, now=NOW).call_id == CALL_ID


def test_a_replay_within_the_window_is_refused_and_forget_lets_a_retry_through() -> None:
    store = ReplayStore()
    verify(sign(BODY), BODY, SECRET, replay=store, now=NOW)
    with pytest.raises(WebhookReplayError) as caught:
        verify(sign(BODY), BODY, SECRET, replay=store, now=NOW + 10)
    assert caught.value.webhook_id == "wh_1"
    assert verify(sign(BODY, webhook_id="wh_2"), BODY, SECRET, replay=store, now=NOW).call_id == CALL_ID
    store.forget("wh_1")  # the app answered 5xx: the API's retry must pass
    assert verify(sign(BODY), BODY, SECRET, replay=store, now=NOW + 20).webhook_id == "wh_1"


def test_a_forged_delivery_does_not_poison_the_replay_store() -> None:
    store = ReplayStore()
    forged = {**sign(BODY), "webhook-signature": "v1," + base64.b64encode(b"y" * 32).decode()}
    with pytest.raises(WebhookSignatureError):
        verify(forged, BODY, SECRET, replay=store, now=NOW)
    assert "wh_1" not in store
    verify(sign(BODY), BODY, SECRET, replay=store, now=NOW)


def test_the_replay_store_is_bounded_and_forgets_expired_ids() -> None:
    store = ReplayStore(max_ids=2)
    assert store.remember("a", expires=10, now=0)
    assert store.remember("b", expires=20, now=0)
    assert not store.remember("a", expires=10, now=5)
    assert store.remember("c", expires=30, now=15)  # "a" expired and made room
    assert len(store) == 2
    assert "a" not in store
    assert store.remember("d", expires=40, now=15)  # full of live ids: the oldest goes
    assert "b" not in store


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", WebhookPayloadError),
        (b"\xff\xfe", WebhookSignatureError),  # not UTF-8: the scheme signs text, so nothing can match
        (b"[1]", WebhookPayloadError),
        (b'{"type":"realtime.call.incoming"}', WebhookPayloadError),
        (b'{"type":"realtime.call.incoming","data":{"call_id":"../x","sip_headers":[]}}', WebhookPayloadError),
        (b'{"type":"realtime.call.incoming","data":{"call_id":"rtc_1","sip_headers":[1]}}', WebhookPayloadError),
        (b'{"type":"batch.completed","data":{"id":"batch_1"}}', WebhookEventTypeError),
    ],
)
def test_malformed_or_other_bodies_are_refused(body: bytes, error: type[WebhookError]) -> None:
    with pytest.raises(error):
        verify(sign(body), body, SECRET, now=NOW)


def test_the_secret_never_shows() -> None:
    signer = WebhookSigner(SECRET)
    assert SECRET[6:] not in repr(signer)
    for bad in ("whsec_not*base64", "whsec_"):
        with pytest.raises(rtengine.ConfigError) as caught:
            verify(sign(BODY), BODY, bad, now=NOW)
        assert bad[6:] not in str(caught.value) or not bad[6:]
    with pytest.raises(WebhookSignatureError) as refused:
        verify(sign(BODY), BODY, OTHER, now=NOW)
    assert OTHER[6:] not in str(refused.value)
    assert sign(BODY)["webhook-signature"][3:] not in str(refused.value)


def test_the_signer_signs_what_verify_accepts() -> None:
    headers = WebhookSigner(SECRET).headers("wh_9", NOW, BODY)
    assert headers == sign(BODY, webhook_id="wh_9")
    assert verify(headers, BODY, SECRET, now=NOW).webhook_id == "wh_9"


@given(st.binary(max_size=64), st.integers(0, len(BODY) - 1), st.integers(1, 255))
def test_a_mutated_body_is_never_accepted(junk: bytes, position: int, flip: int) -> None:
    headers = sign(BODY)
    mutated = bytearray(BODY)
    mutated[position] ^= flip
    for body in (bytes(mutated), BODY + junk if junk else BODY[:-1], junk):
        with pytest.raises(WebhookError):
            verify(headers, body, SECRET, now=NOW)


@given(st.text(max_size=120), st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]))
def test_a_mutated_header_is_never_accepted(value: str, header: str) -> None:
    headers = sign(BODY)
    if value.strip() == headers[header]:
        return
    headers[header] = value
    with pytest.raises(WebhookError):
        verify(headers, BODY, SECRET, now=NOW)


@given(st.binary(min_size=32, max_size=32), st.integers(0, 2))
def test_a_random_signature_is_never_accepted(digest: bytes, extra: int) -> None:
    good = sign(BODY)["webhook-signature"]
    forged = " ".join(["v1," + base64.b64encode(digest).decode()] * (extra + 1))
    if good in forged.split():
        return
    with pytest.raises(WebhookSignatureError):
        verify({**sign(BODY), "webhook-signature": forged}, BODY, SECRET, now=NOW)
