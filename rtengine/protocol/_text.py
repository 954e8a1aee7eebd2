"""Text the wire can carry, sans-IO: every string a caller hands rtengine for the wire is checked here, on the
caller's line. A websocket text frame and a JSON body are UTF-8, which cannot encode a lone surrogate
(``"\\ud800"``, which Python strings may hold): sent as is, it would fail the write inside the connection and end
the conversation as a lost connection, far from the line that made it."""

from __future__ import annotations

from ._errors import ConfigError

__all__ = ["check_text"]


def check_text(value: object, what: str) -> str:
    """``value`` when it is a ``str`` UTF-8 can encode; else :class:`~rtengine.ConfigError` naming ``what`` (the
    message shows the offending code point and its index, never the text)."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, got {type(value).__name__}")
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{what} holds a lone surrogate ({value[exc.start]!r} at index {exc.start}) that UTF-8 cannot encode; "
            "decode text with errors='replace' or fix its source"
        ) from None
    return value
