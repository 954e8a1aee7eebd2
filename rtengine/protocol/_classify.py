"""Server ``error`` classification: deferral, benign or fatal, as a table.

Match on ``error.code`` first, then on known message sentences, because some errors arrive with ``code: null``.
Widening the benign list is a deliberate change: add a row and a test.
"""

from __future__ import annotations

from typing import Final

from ._errors import ErrorClass

__all__ = ["ACTIVE_RESPONSE_PREFIX", "BENIGN_CODES", "FATAL_CODES", "classify_error"]

#: The message prefix of the active-response conflict (some servers send it with ``code: null``).
ACTIVE_RESPONSE_PREFIX: Final = "Conversation already has an active response"

#: Codes that never end a conversation. ``input_audio_buffer_commit_empty``: a push-to-talk commit of less than
#: 100 ms of audio (a tap too short) is refused and nothing else changes.
BENIGN_CODES: Final[frozenset[str]] = frozenset({"response_cancel_not_active", "input_audio_buffer_commit_empty"})

#: Codes that end the conversation and must never be retried automatically (retrying cannot succeed).
FATAL_CODES: Final[frozenset[str]] = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "billing_hard_limit_reached",
        "session_expired",
    }
)

_CODE_TABLE: Final[dict[str, ErrorClass]] = {
    "conversation_already_has_active_response": ErrorClass.DEFERRAL,
    **dict.fromkeys(BENIGN_CODES, ErrorClass.BENIGN),
    **dict.fromkeys(FATAL_CODES, ErrorClass.FATAL),
}

# (message prefix, text that must also occur, class), checked in order when the code does not decide.
_MESSAGE_TABLE: Final[tuple[tuple[str, str, ErrorClass], ...]] = (
    (ACTIVE_RESPONSE_PREFIX, "", ErrorClass.DEFERRAL),
    # Truncation past the received audio: the server clamps and applies it anyway.
    ("Audio content of", "is already shorter than", ErrorClass.BENIGN),
    # Barge-in before the first audio frame.
    ("Only model output audio messages can be truncated", "", ErrorClass.BENIGN),
    ("Your session hit the maximum duration", "", ErrorClass.FATAL),
)


def classify_error(code: str | None, message: str) -> ErrorClass:
    """Classify a server error by its ``code`` (preferred) and ``message``. Unknown errors are fatal."""
    if code is not None:
        known = _CODE_TABLE.get(code)
        if known is not None:
            return known
    for prefix, also, error_class in _MESSAGE_TABLE:
        if message.startswith(prefix) and also in message:
            return error_class
    return ErrorClass.FATAL
