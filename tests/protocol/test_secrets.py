"""The secrets scrubber (sans-IO): configured keys and credential-shaped strings are removed from server text,
URL secrets are redacted, and text without secrets is left as it was."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rtengine.protocol._secrets import (
    REDACTED,
    Scrubber,
    has_secret_shape,
    redact_url,
    secrets_in,
    url_secrets,
)

TOKEN_CHARS = string.ascii_letters + string.digits + "-_.~+/="
keys = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_", min_size=20, max_size=60).map(lambda t: "sk-proj-" + t),
    st.text(string.ascii_letters + string.digits + "-_", min_size=16, max_size=40).map(lambda t: "ek_" + t),
    st.text(string.ascii_letters + string.digits + "+/=", min_size=16, max_size=40).map(lambda t: "whsec_" + t),
    st.text(TOKEN_CHARS, min_size=8, max_size=64),  # a gateway's key of no known shape: configured only
)


@given(keys, st.text(), st.text())
def test_a_configured_key_embedded_anywhere_is_gone(key: str, before: str, after: str) -> None:
    scrubbed = Scrubber([key])(before + key + after)
    assert key not in scrubbed
    assert REDACTED in scrubbed


@given(keys, st.text(), st.text(), st.sampled_from(["Bearer ", "bearer  ", "Basic "]))
def test_a_credential_shaped_string_is_gone_without_configuration(
    key: str, before: str, after: str, scheme: str
) -> None:
    """Keys the scrubber was not told about: a Bearer token, and the known key shapes, wherever they occur."""
    assume(not before[-1:].isalnum() and not before.endswith("_"))  # a word boundary before the token
    assume(not after[:1] or after[:1] in " \n\t\"',;)]}")  # and after it
    assume(key not in before and key not in after)  # only the embedded one is the secret here
    text = before + scheme + key + after
    assert key not in Scrubber()(text)
    if not key.startswith(("sk-", "ek_", "whsec_")):
        return
    assert key not in Scrubber()(before + key + after)


@given(st.text(), st.lists(keys, max_size=2))
def test_text_without_secrets_is_unchanged(text: str, configured: list[str]) -> None:
    assume(not has_secret_shape(text))
    assume(not any(key in text for key in configured))
    assert Scrubber(configured)(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided.",
        "Conversation already has an active response in progress: resp_123. Wait until the response is finished.",
        "Your session hit the maximum duration of 60 minutes.",
        "risk-assessment and task-management, ask-me-anything, desk-1234567890",
        "bearer of bad news",
        "https://api.openai.com/v1/realtime?call_id=rtc_u1_abc&model=gpt-realtime",
        "Invalid value: 'sk'. Supported values are: 'alloy', 'ash'.",
    ],
)
def test_ordinary_server_text_is_unchanged(text: str) -> None:
    assert not has_secret_shape(text)
    assert Scrubber(["sk-configured-0123456789"])(text) == text


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://gw.example/v1?api-key=s3cr3t-value&x=1", f"https://gw.example/v1?api-key={REDACTED}&x=1"),
        (
            "wss://gw.example/v1/realtime?key=abc&call_id=rtc_1",
            f"wss://gw.example/v1/realtime?key={REDACTED}&call_id=rtc_1",
        ),
        (
            "https://gw.example/v1?token=t0k&access_token=a%2Bb",
            f"https://gw.example/v1?token={REDACTED}&access_token={REDACTED}",
        ),
        ("https://user:p%40ss@gw.example/v1", f"https://user:{REDACTED}@gw.example/v1"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("wss://h/v1/realtime?model=gpt-realtime&monkey=1", "wss://h/v1/realtime?model=gpt-realtime&monkey=1"),
    ],
)
def test_secrets_in_urls_are_redacted(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_secrets_of_headers_and_urls_are_found() -> None:
    headers = {"Authorization": "Bearer gw-key-0123456789", "api-key": "azure0123456789", "user-agent": "rtengine"}
    assert set(secrets_in(headers)) == {"Bearer gw-key-0123456789", "gw-key-0123456789", "azure0123456789"}
    assert set(url_secrets("https://u:pw-0123456789@h/v1?api-key=a%2Bb0123456789&model=m")) >= {
        "pw-0123456789",
        "a%2Bb0123456789",
        "a+b0123456789",
    }
    scrub = Scrubber.of(headers, ["https://h/v1?api-key=a%2Bb0123456789"])
    assert scrub("echo a+b0123456789 and azure0123456789") == f"echo {REDACTED} and {REDACTED}"
    lazy = Scrubber.lazy(headers, ("https://h/v1?api-key=a%2Bb0123456789",))  # built on first use, same result
    assert lazy("echo a+b0123456789 and azure0123456789") == f"echo {REDACTED} and {REDACTED}"
    assert lazy("again gw-key-0123456789") == f"again {REDACTED}"


def test_short_configured_secrets_are_not_searched_for() -> None:
    assert Scrubber(["abc"])("abc abc") == "abc abc"
