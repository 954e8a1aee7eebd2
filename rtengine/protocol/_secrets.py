"""Secrets in server-provided text and in URLs, scrubbed (sans-IO).

Theory of operation. rtengine never prints its own key, but a provider or a proxy may reflect it: an error body
that quotes the request's ``Authorization`` header, a rejected handshake that echoes it, an ``error`` event whose
message names it. Every piece of server text goes through one :class:`Scrubber` where it enters rtengine (the
call-creation and hang-up error mapping, the websocket handshake rejection, the server ``error`` event), before it
can reach an exception, a log line, an event, the timeline or a browser. A scrubber removes:

* the configured secrets it was given (the API key, taken from the request's own auth headers, and secrets in the
  base URL), wherever they occur;
* any string shaped like a credential: ``Bearer``/``Basic`` tokens, OpenAI keys (``sk-…``, ``rk-…``), ephemeral
  client secrets (``ek_…``), webhook secrets (``whsec_…``);
* secrets in URLs (:func:`redact_url`): query parameters named like credentials (``api-key``, ``key``, ``token``,
  …) and the password of a URL's userinfo.

A secret written with JSON ``\\uXXXX`` or URL ``%XX`` escapes (a server's JSON encoder or URL quoting may do that)
is found too: when decoding the escapes of credential characters reveals one, the decoded text is returned,
scrubbed (text whose escapes hide nothing is returned as it was).

Each is replaced by ``<redacted>`` (the marker :func:`~rtengine.protocol._headers.redact` uses). Configured
secrets shorter than :data:`MIN_SECRET` characters are not searched for (they would match ordinary words).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from ._headers import SECRET_HEADERS

__all__ = ["MIN_SECRET", "REDACTED", "Scrubber", "has_secret_shape", "redact_url", "secrets_in", "url_secrets"]

REDACTED: Final = "<redacted>"
#: Configured secrets shorter than this are not searched for.
MIN_SECRET: Final = 8
#: Query parameters whose values are credentials.
SECRET_PARAMS: Final = frozenset(
    {
        "access-token",
        "access_token",
        "api-key",
        "api-token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "client_secret",
        "key",
        "password",
        "secret",
        "sig",
        "signature",
        "subscription-key",
        "subscription_key",
        "token",
        "x-api-key",
    }
)

_TOKEN: Final = r"[A-Za-z0-9._~+/=-]"
_PARAMS: Final = "|".join(re.escape(name) for name in sorted(SECRET_PARAMS, key=len, reverse=True))
#: Credential-shaped strings, each with the replacement that keeps its harmless prefix.
_SHAPES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(rf"(?i)\b(bearer|basic)(\s+){_TOKEN}{{8,}}"), rf"\1\2{REDACTED}"),
    (re.compile(r"\b(?:sk|rk)-[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bek_[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{8,}"), REDACTED),
    (re.compile(rf"(?i)([?&;](?:{_PARAMS})=)[^&;#\s\"'<>]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"'<>]*:)[^@/\s\"'<>]+@"), rf"\1{REDACTED}@"),
)


#: Characters a credential is made of: a ``\\uXXXX`` or ``%XX`` escape of one of these may hide a secret.
_PLAIN: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=")
#: A JSON ``\\uXXXX`` escape (not one whose backslash is itself escaped), and a URL ``%XX`` escape.
_ESCAPES: Final = (re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})"), re.compile(r"()%([0-9a-fA-F]{2})"))


def _unescape(text: str) -> str:
    """``text`` with JSON and URL escapes of credential characters decoded (``\\u0073k-…`` → ``sk-…``, ``%67`` →
    ``g``): the same JSON document or URL, written so that a secret cannot hide from a plain search."""

    def plain(match: re.Match[str]) -> str:
        char = chr(int(match[2], 16))
        return match[1] + char if char in _PLAIN else match[0]

    for escape in _ESCAPES:
        text = escape.sub(plain, text)
    return text


def has_secret_shape(text: str) -> bool:
    """True when ``text`` holds a credential-shaped string (one the scrubber replaces with no configured secret)."""
    return any(pattern.search(text) for pattern, _ in _SHAPES)


def secrets_in(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The secret values of request ``headers`` (``Authorization``: the whole value and its token)."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS and value:
            found.append(value)
            _, _, token = value.partition(" ")
            if token.strip():
                found.append(token.strip())
    return tuple(found)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL carries: credential-named query values (raw and decoded) and the userinfo password."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return ()
    found = [password, unquote(password)] if password else []
    for raw in parts.query.split("&"):
        name, _, value = raw.partition("=")
        if unquote(name).lower() in SECRET_PARAMS and value:
            found += [value, unquote(value)]
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS and v]
    return tuple(found)


def redact_url(url: str) -> str:
    """``url`` with its credential-named query values and userinfo password replaced by ``<redacted>``."""
    return Scrubber()(url)


class Scrubber:
    """Removes ``secrets`` (configured values) and credential-shaped strings from text (see the module docstring).
    Callable: ``scrub(text) -> text``."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {s for s in secrets if len(s) >= MIN_SECRET}
        self._secrets = tuple(sorted(unique, key=len, reverse=True))

    @classmethod
    def of(cls, headers: Mapping[str, str] | None = None, urls: Iterable[str] = ()) -> Scrubber:
        """A scrubber for the secrets of request ``headers`` and of ``urls``."""
        return cls((*secrets_in(headers or {}), *(s for url in urls for s in url_secrets(url))))

    @classmethod
    def lazy(cls, headers: Mapping[str, str] | None = None, urls: tuple[str, ...] = ()) -> Callable[[str], str]:
        """:meth:`of`, built on first use: for answer paths that scrub only when something went wrong (building
        one parses the URLs, ≈15 µs)."""
        built: list[Scrubber] = []

        def scrub(text: str) -> str:
            if not built:
                built.append(cls.of(headers, urls))
            return built[0](text)

        return scrub

    def __repr__(self) -> str:
        return f"<Scrubber secrets={len(self._secrets)}>"

    def __call__(self, text: str) -> str:
        scrubbed = self._scrub(text)
        canonical = _unescape(scrubbed)
        if canonical != scrubbed:  # a secret hidden behind escapes is removed with its escapes decoded
            again = self._scrub(canonical)
            if again != canonical:
                return again
        return scrubbed  # escapes that hide no secret are left as they were

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            for _ in range(4):  # a replacement next to a fragment could form the secret again: repeat, bounded
                if secret not in text:
                    break
                text = text.replace(secret, REDACTED)
            else:
                if secret in text:
                    return REDACTED  # pathological: give nothing rather than the secret
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text
