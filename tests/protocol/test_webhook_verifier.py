"""``webhooks.Verifier``, the per-endpoint fast path of webhook verification: the same checks as ``verify`` (never a
false accept), replays refused by its own store, and a signature that is the ``standardwebhooks`` package's."""

from __future__ import annotations

import base64
import functools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from webhook_headers import hand_signed

import rtengine
from rtengine import webhooks
from rtengine.protocol._webhooks import _load, incoming_call_payload

KEY = b"rtengine-verifier-test-key-32by!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_764_460_800
CALL_ID = "rtc_u1_9c6574da8b8a41a18da9308f4ad974ce"
BODY = json.dumps(incoming_call_payload("evt_1", CALL_ID, [("From", "<sip:+1555@x>")], NOW)).encode()


sign = functools.partial(hand_signed, key=KEY, timestamp=NOW)


def test_a_verifier_gives_the_call_and_refuses_its_replay() -> None:
    verifier = webhooks.Verifier(SECRET)
    call = verifier.verify(sign(BODY), BODY, now=NOW)
    assert (call.call_id, call.webhook_id, call.timestamp, call.event_id) == (CALL_ID, "wh_1", NOW, "evt_1")
    with pytest.raises(webhooks.WebhookReplayError):
        verifier.verify(sign(BODY), BODY, now=NOW + 5)
    verifier.replay.forget("wh_1")  # the app answered 5xx: the API's retry passes
    assert verifier.verify(sign(BODY), BODY.decode(), now=NOW + 6).call_id == CALL_ID


def test_a_verifier_shares_a_given_store_and_keeps_the_callers_tolerance() -> None:
    store = webhooks.ReplayStore()
    verifier = webhooks.Verifier(webhooks.WebhookSigner(SECRET), 10, replay=store)
    with pytest.raises(webhooks.WebhookTimestampError):
        verifier.verify(sign(BODY, timestamp=NOW - 11), BODY, now=NOW)
    verifier.verify(sign(BODY), BODY, now=NOW)
    with pytest.raises(webhooks.WebhookReplayError):
        webhooks.verify(sign(BODY), BODY, SECRET, replay=store, now=NOW)


@pytest.mark.parametrize("tolerance", [-1, float("inf"), float("nan")])
def test_a_verifier_refuses_a_bad_tolerance_up_front(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        webhooks.Verifier(SECRET, tolerance)


def test_a_verifiers_tolerance_cannot_be_changed_to_one_never_checked() -> None:
    verifier = webhooks.Verifier(SECRET, 10)
    with pytest.raises(AttributeError):
        verifier.tolerance = float("nan")  # type: ignore[misc]
    with pytest.raises(webhooks.WebhookTimestampError):
        verifier.verify(sign(BODY, timestamp=NOW - 11), BODY, now=NOW)


def test_a_verifier_hides_its_secret_and_refuses_a_bad_one() -> None:
    verifier = webhooks.Verifier(SECRET)
    assert SECRET[6:] not in repr(verifier)
    assert "hidden" in repr(verifier)
    with pytest.raises(rtengine.ConfigError) as caught:
        webhooks.Verifier("whsec_not*base64")
    assert "not*base64" not in str(caught.value)


@pytest.mark.parametrize(
    ("headers", "body", "error"),
    [
        ({**sign(BODY), "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, BODY, "signature"),
        (sign(BODY), BODY.replace(b"rtc_u1", b"rtc_u2"), "signature"),
        (sign(BODY, key=b"another-key-entirely-32-bytes!!!"), BODY, "signature"),
        (sign(BODY, timestamp=NOW + 301), BODY, "timestamp"),
        (sign(b"\xff\xfe"), b"\xff\xfe", "signature"),
        (sign(b"[1]"), b"[1]", "payload"),
        (sign(b'{"type":"batch.completed","data":{}}'), b'{"type":"batch.completed","data":{}}', "event_type"),
    ],
)
def test_a_verifier_refuses_what_verify_refuses_and_records_nothing(
    headers: dict[str, str], body: bytes, error: str
) -> None:
    kinds = {
        "signature": webhooks.WebhookSignatureError,
        "timestamp": webhooks.WebhookTimestampError,
        "payload": webhooks.WebhookPayloadError,
        "event_type": webhooks.WebhookEventTypeError,
    }
    verifier = webhooks.Verifier(SECRET)
    with pytest.raises(kinds[error]):
        verifier.verify(headers, body, now=NOW)
    with pytest.raises(kinds[error]):
        webhooks.verify(headers, body, SECRET, now=NOW)
    assert len(verifier.replay) == 0


_VERIFIER = webhooks.Verifier(SECRET, replay=webhooks.ReplayStore(max_ids=1))


@given(st.binary(max_size=64), st.integers(0, len(BODY) - 1), st.integers(1, 255))
def test_a_verifier_never_accepts_a_mutated_body(junk: bytes, position: int, flip: int) -> None:
    headers = sign(BODY)
    mutated = bytearray(BODY)
    mutated[position] ^= flip
    for body in (bytes(mutated), BODY + junk if junk else BODY[:-1], junk):
        with pytest.raises(webhooks.WebhookError):
            _VERIFIER.verify(headers, body, now=NOW)


@given(st.text(max_size=120), st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]))
def test_a_verifier_never_accepts_a_mutated_header(value: str, header: str) -> None:
    headers = sign(BODY)
    if value.strip() == headers[header]:
        return
    headers[header] = value
    with pytest.raises(webhooks.WebhookError):
        _VERIFIER.verify(headers, BODY, now=NOW)


@given(
    st.text(max_size=40).filter(lambda s: s.encode("utf-8", "replace").decode("utf-8") == s),
    st.integers(-(10**12), 10**13),
    st.one_of(st.binary(max_size=200), st.text(max_size=100).map(lambda s: s.encode("utf-8", "replace"))),
)
def test_the_signers_digest_is_the_standardwebhooks_packages(webhook_id: str, timestamp: int, body: bytes) -> None:
    signer = webhooks.WebhookSigner(SECRET)
    assert signer.digest(webhook_id, timestamp, body) == signer.library_digest(webhook_id, timestamp, body)


@pytest.mark.parametrize(
    ("timestamp", "signable"),
    [(-62_135_596_801, False), (-62_135_596_800, True), (0, True), (253_402_300_799, True), (253_402_300_800, False)],
)
def test_the_digest_ends_where_the_packages_datetimes_end(timestamp: int, signable: bool) -> None:
    signer = webhooks.WebhookSigner(SECRET)
    digest = signer.digest("wh_1", timestamp, BODY)
    assert digest == signer.library_digest("wh_1", timestamp, BODY)
    assert len(digest) == (32 if signable else 0)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.one_of(
        st.text(max_size=60),
        st.tuples(
            st.sampled_from(["", " ", "\n", "\t "]), _JSON_VALUES, st.sampled_from(["", " ", "\r\n", " x", "1"])
        ).map(lambda t: t[0] + json.dumps(t[1]) + t[2]),
    )
)
def test_the_body_is_read_exactly_as_json_loads_reads_it(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except (ValueError, RecursionError) as exc:
        expected = type(exc)
    try:
        got: object = _load(text)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    assert got == expected or (got != got and expected != expected)  # NaN inside: never equal to itself
