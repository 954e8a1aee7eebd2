"""Header precedence (§3.2) and redaction."""

from rtengine.protocol import bearer, merge_request_headers, redact


def test_merge_request_headers_matches_http_precedence() -> None:
    merged = merge_request_headers(
        base={"Authorization": "Bearer base", "X-Base": "1", "X-Session-Id": "old"},
        overrides={"authorization": "Bearer call-token", "X-Extra": "2"},
        identity={"x-session-id": "sess-42"},
        defaults={"User-Agent": "rtengine", "x-base": "default-ignored"},
    )
    assert merged == {
        "authorization": "Bearer call-token",
        "x-base": "1",
        "x-session-id": "sess-42",
        "x-extra": "2",
        "user-agent": "rtengine",
    }


def test_redact_hides_secrets_and_keeps_the_rest() -> None:
    safe = redact({**bearer("sk-secret-123"), "OpenAI-Api-Key": "sk-other", "x-trace": "t"})
    assert safe == {"authorization": "Bearer <redacted>", "openai-api-key": "<redacted>", "x-trace": "t"}
    assert "sk-" not in repr(safe)
