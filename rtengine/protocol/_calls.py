"""Call creation rules (realtime-protocol §2), pure: request bodies, response interpretation, call ids.

The HTTP adapter only moves the bytes built here and hands the status, headers and body back to
:func:`interpret_call_response`, which decides between an answer and a specific error. A call id is validated
(:func:`validate_call_id`) before it can enter a URL.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ._errors import CallRejected, InvalidAnswer, InvalidCallId, InvalidLocation, InvalidSdp

__all__ = [
    "CALL_ID_MAX_LENGTH",
    "CallAnswer",
    "CallBody",
    "call_id_from_location",
    "check_sdp",
    "interpret_call_response",
    "is_retryable_status",
    "multipart_body",
    "parse_retry_after",
    "raw_sdp_body",
    "validate_call_id",
]

#: Longest call id accepted (real ids are ~30 characters).
CALL_ID_MAX_LENGTH: Final = 128
_CALL_ID: Final = re.compile(r"rtc_[A-Za-z0-9_-]+")
_ERROR_BODY_LIMIT: Final = 2000


@dataclass(frozen=True, slots=True)
class CallBody:
    """An encoded call-creation request body and its ``Content-Type``. Encoded once, replayable on retry."""

    content_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """A created call: the SDP answer and the validated call id."""

    sdp: str = field(repr=False)
    call_id: str


_BOUNDARY: Final = re.compile(r"[A-Za-z0-9'()+_,./:=?-]{1,70}")
_SDP_HEAD: Final = b'\r\nContent-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp\r\n\r\n'
_SESSION_HEAD: Final = b'\r\nContent-Disposition: form-data; name="session"\r\nContent-Type: application/json\r\n\r\n'
#: The default boundary: random, drawn once per process (it is not a secret, it only must not occur in a body).
_PROCESS_BOUNDARY: Final = f"rtengine-{secrets.token_hex(12)}"


def multipart_body(offer_sdp: str, session_json: str, *, boundary: str | None = None) -> CallBody:
    """``multipart/form-data`` with the ``sdp`` part (``application/sdp``) then ``session`` (``application/json``).

    CRLF line ends, no preamble, form fields without filenames. Without ``boundary``, a random per-process
    boundary is used, or a fresh random one in the (adversarial) case where it occurs in the body. A given
    ``boundary`` that is invalid or occurs in the body raises ``ValueError``.
    """
    sdp = offer_sdp.encode("utf-8")
    session = session_json.encode("utf-8")
    if boundary is None:
        boundary = _PROCESS_BOUNDARY
        while (marker := f"--{boundary}".encode("ascii")) in sdp or marker in session:
            boundary = f"rtengine-{secrets.token_hex(12)}"
    else:
        if not _BOUNDARY.fullmatch(boundary):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        marker = f"--{boundary}".encode("ascii")
        if marker in sdp or marker in session:
            raise ValueError("multipart boundary occurs in the body")
    content = b"".join((marker, _SDP_HEAD, sdp, b"\r\n", marker, _SESSION_HEAD, session, b"\r\n", marker, b"--\r\n"))
    return CallBody(f"multipart/form-data; boundary={boundary}", content)


def raw_sdp_body(offer_sdp: str) -> CallBody:
    """The raw variant: the offer alone as ``application/sdp`` (the session then comes via ``session.update``)."""
    return CallBody("application/sdp", offer_sdp.encode("utf-8"))


def check_sdp(sdp: str, *, what: str = "SDP") -> str:
    """Cheap structural check of an SDP blob: starts with ``v=0``, has an ``m=`` line. Raises ``InvalidSdp``."""
    stripped = sdp.lstrip()
    if not stripped.startswith("v=0"):
        raise InvalidSdp(f"{what} does not start with 'v=0'")
    if "\nm=" not in stripped:
        raise InvalidSdp(f"{what} has no media ('m=') line")
    return sdp


def validate_call_id(call_id: str) -> str:
    """Return ``call_id`` if it is ``rtc_`` + ``[A-Za-z0-9_-]+`` and at most 128 characters, else raise."""
    if len(call_id) > CALL_ID_MAX_LENGTH:
        raise InvalidCallId(f"realtime call id is longer than {CALL_ID_MAX_LENGTH} characters")
    if not _CALL_ID.fullmatch(call_id):
        raise InvalidCallId(f"invalid realtime call id: {call_id!r}")
    return call_id


def call_id_from_location(location: str | None) -> str:
    """The call id of a ``Location`` header, by the reference's rules (§2.2).

    Missing → "realtime call response missing Location"; not visible ASCII → "invalid realtime call Location";
    otherwise drop everything from the first ``?``, then take the right-most ``/`` segment that starts with
    ``rtc_`` and is longer than 4 characters; none → "… does not contain a call id". The id found is then
    validated, so nothing that could change a URL's meaning gets through.
    """
    if location is None:
        raise InvalidLocation("realtime call response missing Location")
    if not location or not all(0x21 <= ord(c) <= 0x7E for c in location):
        raise InvalidLocation(f"invalid realtime call Location: {location[:200]!r}")
    path = location.split("?", 1)[0]
    for segment in reversed(path.split("/")):
        if segment.startswith("rtc_") and len(segment) > 4:
            try:
                return validate_call_id(segment)
            except InvalidCallId as exc:
                raise InvalidLocation(f"realtime call Location has an unusable call id: {exc}") from exc
    raise InvalidLocation(f"realtime call Location does not contain a call id: {location[:200]}")


def is_retryable_status(status: int) -> bool:
    """5xx is retried; 429 and every other 4xx are not (§2.3)."""
    return 500 <= status <= 599


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form only); ``None`` when absent or not a number."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _rejection_message(status: int, body: str, retry_after: float | None) -> str:
    if status >= 500:
        head = f"realtime call creation failed: the service is currently experiencing high demand (HTTP {status})"
    elif status in (401, 403):
        head = f"realtime call creation was refused: check the API key (HTTP {status})"
    elif status == 429:
        head = "realtime call creation was rate limited (HTTP 429)"
    elif 300 <= status <= 399:
        head = f"realtime call creation was redirected (HTTP {status}); redirects are never followed"
    else:
        head = f"realtime call creation was rejected (HTTP {status})"
    tail = f"; retry after {retry_after:g} s" if retry_after is not None else ""
    return f"{head}: {body}{tail}" if body else head + tail


def interpret_call_response(status: int, headers: Mapping[str, str], body: bytes) -> CallAnswer:
    """Turn a call-creation response into a :class:`CallAnswer` or raise the specific error.

    ``headers`` must be case-insensitive for ``location`` and ``retry-after`` (httpx's are); plain dicts are
    looked up in lower case. A non-2xx body is never passed to the SDP check.
    """
    if not 200 <= status <= 299:
        text = body[:_ERROR_BODY_LIMIT].decode("utf-8", "replace").strip()
        retry_after = parse_retry_after(headers.get("retry-after"))
        raise CallRejected(
            _rejection_message(status, text, retry_after), status=status, body=text, retry_after=retry_after
        )
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidAnswer(f"failed to decode realtime call SDP response: {exc}") from exc
    call_id = call_id_from_location(headers.get("location"))
    try:
        check_sdp(sdp, what="realtime call SDP answer")
    except InvalidSdp as exc:
        raise InvalidAnswer(str(exc)) from exc
    return CallAnswer(sdp, call_id)
