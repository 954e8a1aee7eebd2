"""The §8 server error classification table."""

import pytest

from rtengine import ErrorClass
from rtengine.protocol import classify_error


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("conversation_already_has_active_response", "whatever", ErrorClass.DEFERRAL),
        (None, "Conversation already has an active response in progress: resp_1. Wait…", ErrorClass.DEFERRAL),
        ("response_cancel_not_active", "Cancellation failed: no active response found", ErrorClass.BENIGN),
        (None, "Audio content of 120ms is already shorter than 500ms", ErrorClass.BENIGN),
        (None, "Only model output audio messages can be truncated", ErrorClass.BENIGN),
        ("invalid_api_key", "Incorrect API key provided.", ErrorClass.FATAL),
        ("insufficient_quota", "quota", ErrorClass.FATAL),
        ("account_deactivated", "gone", ErrorClass.FATAL),
        ("billing_hard_limit_reached", "limit", ErrorClass.FATAL),
        ("session_expired", "Your session hit the maximum duration of 30 minutes.", ErrorClass.FATAL),
        (None, "Your session hit the maximum duration of 60 minutes.", ErrorClass.FATAL),
        ("something_new", "never seen before", ErrorClass.FATAL),
        (None, "upstream boom", ErrorClass.FATAL),
    ],
)
def test_classification_table(code: str | None, message: str, expected: ErrorClass) -> None:
    assert classify_error(code, message) is expected


def test_code_wins_over_message() -> None:
    # A fatal code with a message that looks benign is still fatal.
    assert classify_error("invalid_api_key", "Only model output audio messages can be truncated") is ErrorClass.FATAL
