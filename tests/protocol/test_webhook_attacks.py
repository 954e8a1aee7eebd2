"""Webhook verification against an attacker (review of #12): an unsigned or unsignable delivery never reaches the
replay store, the store stays O(1) once full and agrees with the timestamp window at its edge, and every odd input
is a WebhookError (a bad store setting a ConfigError)."""

from __future__ import annotations

import base64
import json
import time

import pytest

import rtengine
from rtengine import webhooks
from rtengine.protocol._webhooks import incoming_call_payload

KEY = b"rtengine-review-webhook-key-32b!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_764_460_800
CALL_ID = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
BODY = json.dumps(incoming_call_payload("evt_1", CALL_ID, [("From", "<sip:+1555@x>")], NOW)).encode()


def test_an_unsigned_body_that_is_not_utf8_fails_the_signature_and_leaves_the_replay_store_alone() -> None:
    store = webhooks.ReplayStore()
    forged = {"webhook-id": "evt_attacker", "webhook-timestamp": str(NOW), "webhook-signature": "v1,"}
    with pytest.raises(webhooks.WebhookSignatureError):
        webhooks.verify(forged, b"\xff\xfe not utf-8", SECRET, replay=store, now=NOW)
    assert "evt_attacker" not in store  # nobody without the secret can put ids into (or evict ids from) the store


def test_an_unsigned_delivery_cannot_make_the_genuine_one_a_replay() -> None:
    store = webhooks.ReplayStore()
    genuine = webhooks.WebhookSigner(SECRET).headers("evt_known", NOW, BODY)
    forged = {**genuine, "webhook-signature": "v1,"}
    with pytest.raises(webhooks.WebhookError):
        webhooks.verify(forged, b"\x80", SECRET, replay=store, now=NOW)
    assert webhooks.verify(genuine, BODY, SECRET, replay=store, now=NOW).call_id == CALL_ID


def test_the_replay_store_stays_cheap_once_full() -> None:
    store = webhooks.ReplayStore(max_ids=50_000)

    def insert(prefix: str, count: int) -> float:
        start = time.perf_counter()
        for i in range(count):
            store.remember(f"{prefix}{i}", expires=NOW + 300, now=NOW)
        return time.perf_counter() - start

    filling = insert("fill", 50_000) / 50_000
    full = insert("more", 300) / 300
    assert len(store) == 50_000  # bounded: it holds
    assert full < 50 * filling, f"{full * 1e6:.1f} µs per insert once full vs {filling * 1e6:.2f} µs while filling"


def test_a_replay_at_the_edge_of_the_window_is_refused() -> None:
    store = webhooks.ReplayStore()
    headers = webhooks.WebhookSigner(SECRET).headers("evt_edge", NOW - 300, BODY)
    assert webhooks.verify(headers, BODY, SECRET, replay=store, now=NOW).call_id == CALL_ID
    with pytest.raises(webhooks.WebhookReplayError):
        webhooks.verify(headers, BODY, SECRET, replay=store, now=NOW)


def test_a_text_body_that_is_not_encodable_is_a_webhook_error() -> None:
    headers = webhooks.WebhookSigner(SECRET).headers("evt_s", NOW, BODY)
    with pytest.raises(webhooks.WebhookError):
        webhooks.verify(headers, BODY.decode() + "\udcff", SECRET, now=NOW)


def test_a_timestamp_past_year_9999_is_a_webhook_error_whatever_the_tolerance() -> None:
    headers = {"webhook-id": "evt_y", "webhook-timestamp": "999999999999", "webhook-signature": "v1,AAAA"}
    with pytest.raises(webhooks.WebhookError):
        webhooks.verify(headers, BODY, SECRET, tolerance=1e12, now=NOW)


@pytest.mark.parametrize("max_ids", [0, -1])
def test_a_replay_store_without_room_is_refused_up_front(max_ids: int) -> None:
    with pytest.raises(rtengine.ConfigError):
        webhooks.ReplayStore(max_ids=max_ids)


def test_a_signed_delivery_with_a_bad_payload_is_not_recorded_as_seen() -> None:
    store = webhooks.ReplayStore()
    body = b'{"type":"realtime.call.incoming","data":{"call_id":"../x","sip_headers":[]}}'
    headers = webhooks.WebhookSigner(SECRET).headers("evt_bad", NOW, body)
    with pytest.raises(webhooks.WebhookPayloadError):
        webhooks.verify(headers, body, SECRET, replay=store, now=NOW)
    assert "evt_bad" not in store


def test_a_replay_store_of_one_keeps_the_latest_id() -> None:
    store = webhooks.ReplayStore(max_ids=1)
    headers = webhooks.WebhookSigner(SECRET).headers("evt_0", NOW, BODY)
    assert webhooks.verify(headers, BODY, SECRET, replay=store, now=NOW).call_id == CALL_ID
    with pytest.raises(webhooks.WebhookReplayError):
        webhooks.verify(headers, BODY, SECRET, replay=store, now=NOW + 1)
