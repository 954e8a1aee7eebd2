"""``RealtimeClient()`` finds its endpoint the way the ``openai`` package does: ``$OPENAI_BASE_URL``, else the API."""

import pytest

import rtengine


def test_the_base_url_comes_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert rtengine.RealtimeClient().base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8011/v1")
    client = rtengine.RealtimeClient()
    assert client.base_url == "http://127.0.0.1:8011/v1"
    assert client.calls_url == "http://127.0.0.1:8011/v1/realtime/calls"
    assert rtengine.RealtimeClient("http://127.0.0.1:9/v1").base_url == "http://127.0.0.1:9/v1"
