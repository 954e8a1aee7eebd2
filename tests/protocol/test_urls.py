"""URL rules for call creation, the plain websocket and the sideband (§2.1, §3.1, §3.6)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine import ConfigError, InvalidCallId
from rtengine.protocol import calls_url, realtime_ws_url, sideband_url


def test_websocket_url_from_http_base_defaults_to_ws_path() -> None:
    assert (
        realtime_ws_url("http://127.0.0.1:8011", model="gpt-realtime-1.5")
        == "ws://127.0.0.1:8011/v1/realtime?model=gpt-realtime-1.5"
    )


def test_websocket_url_from_v1_base_appends_realtime_path() -> None:
    assert realtime_ws_url("https://api.openai.com/v1", model="m") == "wss://api.openai.com/v1/realtime?model=m"
    assert realtime_ws_url("https://api.openai.com/v1/", model="m") == "wss://api.openai.com/v1/realtime?model=m"


def test_websocket_url_from_nested_v1_base() -> None:
    assert realtime_ws_url("https://proxy.example/openai/v1", model="m") == (
        "wss://proxy.example/openai/v1/realtime?model=m"
    )


def test_websocket_url_preserves_existing_realtime_path_and_extra_query_params() -> None:
    url = realtime_ws_url("wss://h/custom/realtime/?tenant=a", model="m", extra_query=[("x", "1"), ("model", "no")])
    assert url == "wss://h/custom/realtime?tenant=a&model=m&x=1"
    assert realtime_ws_url("https://h/other/path", model="m") == "wss://h/other/path?model=m"


def test_websocket_url_for_call_id_joins_existing_realtime_session() -> None:
    assert sideband_url("https://api.openai.com/v1", "rtc_abc") == "wss://api.openai.com/v1/realtime?call_id=rtc_abc"
    # never a model beside call_id, call_id last
    assert sideband_url("http://h:1/v1?model=m&x=1", "rtc_a", extra_query=[("model", "m")]) == (
        "ws://h:1/v1/realtime?x=1&call_id=rtc_a"
    )


def test_query_values_are_encoded() -> None:
    assert realtime_ws_url("http://h/v1", model="a b&c=d") == "ws://h/v1/realtime?model=a%20b%26c%3Dd"


def test_calls_url() -> None:
    assert calls_url("https://api.openai.com/v1") == "https://api.openai.com/v1/realtime/calls"
    assert calls_url("http://127.0.0.1:8011") == "http://127.0.0.1:8011/v1/realtime/calls"
    assert calls_url("http://127.0.0.1:8011/v1/?q=1") == "http://127.0.0.1:8011/v1/realtime/calls"


@pytest.mark.parametrize("base", ["ftp://h/v1", "h/v1", "http:///v1", "http://h/v1#frag"])
def test_bad_base_urls_are_config_errors(base: str) -> None:
    with pytest.raises(ConfigError):
        realtime_ws_url(base, model="m")


def test_unsupported_scheme_message() -> None:
    with pytest.raises(ConfigError, match="unsupported realtime api_url scheme: ftp"):
        realtime_ws_url("ftp://h/v1", model="m")
    with pytest.raises(ConfigError, match="http"):
        calls_url("wss://h/v1")


def test_sideband_url_refuses_an_invalid_call_id() -> None:
    with pytest.raises(InvalidCallId):
        sideband_url("https://h/v1", "rtc_a&model=x")


@given(st.text(min_size=1, max_size=40))
def test_sideband_url_has_exactly_one_query_parameter_for_any_valid_id(suffix: str) -> None:
    call_id = "rtc_" + suffix
    try:
        url = sideband_url("https://h/v1", call_id)
    except InvalidCallId:
        return
    assert url.endswith("?call_id=" + call_id)
    assert url.count("?") == 1
    assert "&" not in url
    assert "#" not in url
