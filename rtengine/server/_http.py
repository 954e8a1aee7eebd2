"""The local server's HTTP vocabulary: its routes, the API's JSON error bodies, auth, and call-creation bodies.

Pure functions over bytes and headers, no I/O: :func:`parse_call_body` reads a ``POST /v1/realtime/calls`` body
(multipart ``sdp`` + optional ``session``, or raw ``application/sdp``); :func:`hangup_target` recognises a
``POST /v1/realtime/calls/{call_id}/hangup`` path. Anything malformed raises :class:`HttpError`, which carries
the status and the API's error ``code``.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import hmac
import json
from typing import Any, Final

from ..adapters._serving import HttpRequest
from ._validate import check_session, load_json

__all__ = [
    "CALLS_PATH",
    "HANGUP_SUFFIX",
    "JSON_TYPE",
    "REALTIME_PATH",
    "HttpError",
    "Reply",
    "authorized",
    "error_body",
    "hangup_target",
    "parse_call_body",
]

#: A call-creation body has an ``sdp`` and a ``session`` part; beyond this many parts it is refused unparsed.
MAX_PARTS: Final = 8
CALLS_PATH: Final = "/v1/realtime/calls"
REALTIME_PATH: Final = "/v1/realtime"
HANGUP_SUFFIX: Final = "/hangup"
JSON_TYPE: Final = ("content-type", "application/json")

#: An HTTP answer: ``(status, headers, body)``.
Reply = tuple[int, list[tuple[str, str]], bytes]


class HttpError(Exception):
    """A request the server answers with ``status`` and the API's JSON error body (``code``, ``param``)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param

    def reply(self) -> Reply:
        return self.status, [JSON_TYPE], error_body(str(self), self.code, param=self.param)


def error_body(
    message: str, code: str | None, type: str = "invalid_request_error", *, param: str | None = None
) -> bytes:
    """The API's JSON error body: ``{"error": {"message", "type", "code", "param"}}``."""
    return json.dumps({"error": {"message": message, "type": type, "code": code, "param": param}}).encode()


def authorized(api_key: str | None, headers: dict[str, str]) -> bool:
    """True when no key is configured, or ``Authorization`` is ``Bearer <api_key>`` (compared in constant time)."""
    if api_key is None:
        return True
    return hmac.compare_digest(headers.get("authorization", "").encode(), f"Bearer {api_key}".encode())


def hangup_target(path: str) -> str | None:
    """The raw ``{call_id}`` of a ``/v1/realtime/calls/{call_id}/hangup`` path (not validated), else None."""
    prefix = CALLS_PATH + "/"
    if path.startswith(prefix) and path.endswith(HANGUP_SUFFIX) and len(path) > len(prefix) + len(HANGUP_SUFFIX):
        return path[len(prefix) : -len(HANGUP_SUFFIX)]
    return None


def parse_call_body(request: HttpRequest) -> tuple[str, dict[str, Any] | None, list[str], list[str]]:
    """``(sdp, session, part names, part content types)`` of a call-creation body, or :class:`HttpError`."""
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/sdp":
        try:
            return request.body.decode("utf-8"), None, [], []
        except UnicodeDecodeError as exc:
            raise HttpError(400, "The SDP offer is not valid UTF-8.") from exc
    if mime != "multipart/form-data":
        raise HttpError(
            400, f"Unsupported Content-Type {mime or '(none)'!r}; send multipart/form-data or application/sdp."
        )
    _check_multipart_size(content_type, request.body)
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart() or message.defects:
        raise HttpError(400, "Malformed multipart body.")
    sdp: str | None = None
    session: dict[str, Any] | None = None
    names: list[str] = []
    types: list[str] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise HttpError(400, "A multipart part has no form-field name.")
        names.append(name)
        types.append(part.get_content_type())
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(400, f"The {name!r} part is not valid UTF-8.") from exc
        if name == "sdp":
            sdp = text
        elif name == "session":
            session = _session_part(text)
    if sdp is None:
        raise HttpError(400, "Missing required part 'sdp'.", "missing_required_parameter")
    return sdp, session, names, types


def _check_multipart_size(content_type: str, body: bytes) -> None:
    """Refuse, before parsing, a body with more than :data:`MAX_PARTS` parts or with a nested multipart part
    (both cheap byte counts: the parser's cost grows with parts, and it recurses into nested multiparts)."""
    boundary = email.message.Message()
    boundary["content-type"] = content_type
    value = boundary.get_param("boundary")
    if not isinstance(value, str) or not value:
        raise HttpError(400, "Malformed multipart body: no boundary.")
    if body.count(b"--" + value.encode("latin-1", "replace")) > MAX_PARTS + 1:
        raise HttpError(400, f"Too many multipart parts (at most {MAX_PARTS}).")
    if b"multipart/" in body.lower():
        raise HttpError(400, "Malformed multipart body: a part may not itself be multipart.")


def _session_part(text: str) -> dict[str, Any]:
    try:
        value = load_json(text)
    except ValueError as exc:
        raise HttpError(400, f"The 'session' part is not valid JSON: {exc}"[:300]) from exc
    if not isinstance(value, dict):
        raise HttpError(400, "The 'session' part must be a JSON object.")
    problem = check_session(value, require_type=False)
    if problem is not None:
        raise HttpError(400, problem.message, problem.code, problem.param)
    return value
