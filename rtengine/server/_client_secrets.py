"""``POST /v1/realtime/client_secrets``: ephemeral keys (``ek_…``) for browser clients, as the API mints them.

The request (``openai`` SDK ``client.realtime.client_secrets.create``) carries an optional ``expires_after``
(``anchor`` ``created_at``, ``seconds`` 10..7200, default 600) and an optional ``session``; the answer is ``200``
with ``value``, ``expires_at`` and the whole session (the recorded shape: ``expires_at`` 0 inside the session).
A minted key is then accepted as a bearer for calls, hang-ups and websockets until it expires, like the API key.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any, Final

from ..adapters._serving import HttpRequest
from ..protocol._session import DEFAULT_MODEL
from ._http import JSON_TYPE, HttpError, Reply
from ._sessions import apply_session_update
from ._shapes import default_session
from ._validate import check_session

__all__ = ["CLIENT_SECRETS_PATH", "ClientSecrets"]

CLIENT_SECRETS_PATH: Final = "/v1/realtime/client_secrets"
#: ``expires_after.seconds``: the API's default and range.
DEFAULT_TTL: Final = 600
MIN_TTL: Final = 10
MAX_TTL: Final = 7200


class ClientSecrets:
    """The ephemeral keys this server minted, with their expiry (wall clock, seconds since the epoch)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._sessions: dict[str, dict[str, Any]] = {}

    def accepts(self, headers: dict[str, str]) -> bool:
        """True when ``Authorization`` is ``Bearer <a minted key>`` that has not expired."""
        return self.session_of(headers) is not None

    def session_of(self, headers: dict[str, str]) -> dict[str, Any] | None:
        """The session a live minted key in ``Authorization`` was minted with (a copy), None for any other header:
        a websocket opened with the key starts from it, as the API's does."""
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ek_"):
            return None
        key = auth.removeprefix("Bearer ")
        expiry = self._expiry.get(key)
        if expiry is None or time.time() >= expiry:
            return None
        return copy.deepcopy(self._sessions[key])

    def mint(self, request: HttpRequest) -> Reply:
        """Answer one ``POST /v1/realtime/client_secrets`` (already authorized): ``200`` and the key, or the API's
        ``400`` error naming the offending ``param``."""
        try:
            ttl, session = _parse(request.body)
        except HttpError as exc:
            return exc.reply()
        value = "ek_" + secrets.token_hex(16)
        expires_at = int(time.time()) + ttl
        self._expiry = {k: v for k, v in self._expiry.items() if v > time.time()}  # forget the expired ones
        self._sessions = {k: v for k, v in self._sessions.items() if k in self._expiry}
        self._expiry[value] = expires_at
        self._sessions[value] = session
        body = {"expires_at": expires_at, "session": session, "value": value}
        return 200, [JSON_TYPE], json.dumps(body).encode()


def _parse(body: bytes) -> tuple[int, dict[str, Any]]:
    """``(seconds the key lives, the session it carries)`` of a request body, or :class:`HttpError`."""
    try:
        request = json.loads(body or b"{}")
    except ValueError as exc:
        raise HttpError(400, "The body is not valid JSON.", "invalid_json") from exc
    if not isinstance(request, dict):
        raise HttpError(400, "The body must be a JSON object.", "invalid_type")
    for key in request:
        if key not in ("expires_after", "session"):
            raise HttpError(400, f"Unknown parameter: '{key[:100]}'.", "unknown_parameter", param=key[:100])
    return _ttl(request.get("expires_after")), _session(request.get("session"))


def _ttl(expires_after: Any) -> int:
    if expires_after is None:
        return DEFAULT_TTL
    if not isinstance(expires_after, dict):
        raise HttpError(400, "Invalid type for 'expires_after': expected an object.", "invalid_type", "expires_after")
    anchor = expires_after.get("anchor", "created_at")
    if anchor != "created_at":
        message = f"Invalid value: '{str(anchor)[:100]}'. Value must be 'created_at'."
        raise HttpError(400, message, "invalid_value", param="expires_after.anchor")
    seconds = expires_after.get("seconds", DEFAULT_TTL)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not MIN_TTL <= seconds <= MAX_TTL:
        message = f"Invalid 'expires_after.seconds': expected an integer from {MIN_TTL} to {MAX_TTL}."
        raise HttpError(400, message, "invalid_value", param="expires_after.seconds")
    return seconds


def _session(session: Any) -> dict[str, Any]:
    if session is None:
        session = {"type": "realtime"}
    if not isinstance(session, dict):
        raise HttpError(400, "Invalid type for 'session': expected an object.", "invalid_type", param="session")
    model = session.get("model", DEFAULT_MODEL)
    update = {k: v for k, v in session.items() if k != "model"}
    problem = check_session(update)
    if problem is not None:
        raise HttpError(400, problem.message, problem.code, param=problem.param)
    if not isinstance(model, str):
        raise HttpError(400, "Invalid type for 'session.model': expected a string.", "invalid_type", "session.model")
    return {**apply_session_update(default_session(model), update), "expires_at": 0}
