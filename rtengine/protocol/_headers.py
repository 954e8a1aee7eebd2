"""Request-header rules (authorization, beta headers) and redaction, pure.

Header names are compared case-insensitively and emitted in lower case. :func:`redact` is what every log,
repr and record goes through, so an API key never leaves in clear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from ._errors import ConfigError

__all__ = ["SECRET_HEADERS", "bearer", "check_headers", "merge_request_headers", "redact"]

#: Headers whose values are secrets.
SECRET_HEADERS: Final = frozenset({"authorization", "openai-api-key", "api-key", "x-api-key", "cookie"})

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

#: The characters of a header name (RFC 9110 ``token``).
_TOKEN: Final = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _items(headers: Headers) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def check_headers(headers: Mapping[str, str], what: str) -> None:
    """Refuse, with :class:`~rtengine.ConfigError`, a header a request cannot carry as it is: a name that is not a
    ``str`` token, or a value that is not a ``str`` of visible ASCII, spaces and tabs (a CR/LF, a control, a
    non-ASCII character or a lone surrogate would fail inside the HTTP or websocket library, whose error quotes
    the value). The message names the header and the offending character's index, never the value (it may be a
    secret)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN:
            raise ConfigError(f"{what}: header name {name!r} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)")
        if not isinstance(value, str):
            raise ConfigError(f"{what}: header {name!r} must have a str value, got {type(value).__name__}")
        bad = next((index for index, c in enumerate(value) if not (" " <= c <= "~" or c == "\t")), None)
        if bad is not None:
            raise ConfigError(
                f"{what}: header {name!r} has a character an HTTP header cannot carry at index {bad} (a control, "
                "a line break or a non-ASCII character)"
            )


def bearer(token: str) -> dict[str, str]:
    """``{"authorization": "Bearer <token>"}``.

    Raises :class:`~rtengine.ConfigError` (which never shows the token) when the token has a character no header
    value can carry as it is — whitespace, a control or a non-ASCII character, such as the newline a key read from
    a file keeps: sent on, it would fail in the HTTP or websocket library, whose error (and debug log) quotes the
    whole header."""
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(
            "the API key has a character an HTTP header cannot carry (whitespace, a control or a non-ASCII "
            "character; was it read from a file with its newline?)"
        )
    return {"authorization": f"Bearer {token}"}


def merge_request_headers(
    base: Headers, overrides: Headers, identity: Headers = (), defaults: Headers = ()
) -> dict[str, str]:
    """Merge by HTTP precedence: ``base``, then ``overrides`` replace, then ``identity`` is set again, then
    ``defaults`` are added only where the name is absent."""
    merged: dict[str, str] = {}
    for layer in (base, overrides, identity):
        for name, value in _items(layer):
            merged[name.lower()] = value
    for name, value in _items(defaults):
        merged.setdefault(name.lower(), value)
    return merged


def redact(headers: Headers) -> dict[str, str]:
    """A copy safe to log: secret values become ``"<redacted>"`` (the scheme word of ``Bearer`` is kept)."""
    out: dict[str, str] = {}
    for name, value in _items(headers):
        key = name.lower()
        if key in SECRET_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[key] = f"{scheme} <redacted>".strip()
        else:
            out[key] = value
    return out
