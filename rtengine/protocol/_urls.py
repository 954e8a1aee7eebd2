"""URL rules (the websocket, sideband and calls URLs), pure.

From one base URL (``https://api.openai.com/v1``) rtengine derives three URLs:

* :func:`calls_url` — ``POST …/v1/realtime/calls`` (http/https only, no query);
* :func:`realtime_ws_url` — the plain websocket, ``wss://…/v1/realtime?model=…``;
* :func:`sideband_url` — the sideband of a call, ``wss://…/v1/realtime?call_id=rtc_…`` (never a ``model``).

Query values are percent-encoded; an existing query on the base URL is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ._calls import validate_call_id
from ._errors import ConfigError
from ._secrets import redact_url

__all__ = ["calls_url", "realtime_ws_url", "sideband_url"]

_WS_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def _split(base_url: str) -> tuple[str, str, str, str]:
    try:
        parts = urlsplit(base_url)
    except ValueError as exc:
        raise ConfigError(f"invalid realtime base URL: {exc}") from exc
    if not parts.netloc:
        raise ConfigError(f"realtime base URL has no host: {redact_url(base_url)!r}")
    if parts.fragment:
        raise ConfigError(f"realtime base URL may not have a fragment: {redact_url(base_url)!r}")
    return parts.scheme.lower(), parts.netloc, parts.path, parts.query


def _realtime_path(path: str) -> str:
    if path in ("", "/"):
        return "/v1/realtime"
    if path.endswith("/realtime"):
        return path
    if path.endswith("/realtime/"):
        return path[:-1]
    if path.endswith("/v1"):
        return path + "/realtime"
    if path.endswith("/v1/"):
        return path + "realtime"
    return path


def _ws(base_url: str, params: list[tuple[str, str]]) -> str:
    scheme, netloc, path, query = _split(base_url)
    ws_scheme = _WS_SCHEMES.get(scheme)
    if ws_scheme is None:
        raise ConfigError(f"unsupported realtime api_url scheme: {scheme}")
    existing = parse_qsl(query, keep_blank_values=True)
    return urlunsplit((ws_scheme, netloc, _realtime_path(path), urlencode(existing + params, quote_via=quote), ""))


def realtime_ws_url(base_url: str, *, model: str | None, extra_query: Iterable[tuple[str, str]] = ()) -> str:
    """The plain realtime websocket URL: existing query, then ``model``, then ``extra_query``.

    A ``model`` in ``extra_query`` is dropped when ``model`` is given (the engine's model wins).
    """
    params: list[tuple[str, str]] = []
    if model is not None:
        params.append(("model", model))
    params.extend((k, v) for k, v in extra_query if not (model is not None and k == "model"))
    if model is not None:
        _, _, _, query = _split(base_url)
        if any(k == "model" for k, _ in parse_qsl(query, keep_blank_values=True)):
            base_url = _without_param(base_url, "model")
    return _ws(base_url, params)


def sideband_url(base_url: str, call_id: str, *, extra_query: Iterable[tuple[str, str]] = ()) -> str:
    """The sideband URL of a call: like :func:`realtime_ws_url` without any ``model``, ``call_id`` last."""
    validate_call_id(call_id)
    params = [(k, v) for k, v in extra_query if k not in ("model", "call_id")]
    params.append(("call_id", call_id))
    return _ws(_without_param(_without_param(base_url, "model"), "call_id"), params)


def calls_url(base_url: str) -> str:
    """``{base}/realtime/calls`` (an empty base path counts as ``/v1``); http/https only, no query string."""
    scheme, netloc, path, _ = _split(base_url)
    if scheme not in ("http", "https"):
        raise ConfigError(f"call creation needs an http(s) base URL, got scheme {scheme!r}")
    path = path.rstrip("/") or "/v1"
    if path.endswith("/realtime"):
        path = path[: -len("/realtime")]
    return urlunsplit((scheme, netloc, path + "/realtime/calls", "", ""))


def _without_param(url: str, name: str) -> str:
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote)))
