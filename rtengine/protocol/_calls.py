"""Call creation rules (``POST /v1/realtime/calls``), pure: request bodies, response interpretation, call ids.

The HTTP adapter only moves the bytes built here and hands the status, headers and body back to
:func:`interpret_call_response`, which decides between an answer and a specific error. A call id is validated
(:func:`validate_call_id`) before it can enter a URL.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Final

from ._backoff import backoff
from ._errors import CallNotFound, CallRejected, InvalidAnswer, InvalidCallId, InvalidLocation, InvalidSdp
from ._secrets import Scrubber
from ._text import check_text

__all__ = [
    "CALL_ID_MAX_LENGTH",
    "CallAnswer",
    "CallBody",
    "call_id_from_location",
    "call_retry_delay",
    "check_sdp",
    "interpret_call_response",
    "interpret_hangup_response",
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
#: Removes secrets from server text (a :class:`~rtengine.protocol._secrets.Scrubber`).
Scrub = Callable[[str], str]


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
    ``boundary`` that is invalid or occurs in the body raises ``ValueError``; text UTF-8 cannot encode (a lone
    surrogate) raises :class:`~rtengine.ConfigError`.
    """
    sdp = check_text(offer_sdp, "offer_sdp").encode()
    session = check_text(session_json, "the session (as JSON)").encode()
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
    return CallBody("application/sdp", check_text(offer_sdp, "offer_sdp").encode())


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
    """The call id of a ``Location`` header, as the Realtime API sends it (``/v1/realtime/calls/{call_id}``).

    Missing → "realtime call response missing Location"; not visible ASCII → "invalid realtime call Location";
    otherwise drop everything from the first ``?``, then take the right-most ``/`` segment that starts with
    ``rtc_`` and is longer than 4 characters; none → "… does not contain a call id". The id found is then
    validated, so nothing that could change a URL's meaning gets through.
    """
    if location is None:
        raise InvalidLocation("realtime call response missing Location")
    if not (location.isascii() and location.isprintable()) or " " in location or not location:  # visible ASCII
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
    """5xx is retried; 429 and every other 4xx are not. A 429 *with* ``Retry-After`` is the one exception,
    decided by :func:`call_retry_delay`."""
    return 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds, or an HTTP-date (RFC 9110 §10.2.3) taken relative to ``now``
    (POSIX seconds; :func:`time.time` when omitted), a date in the past giving 0. ``None`` when absent,
    negative or unparsable."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" zone: a date without a known zone; HTTP-dates are GMT
            return None
        reference = time.time() if now is None else now
        return max(0.0, when.timestamp() - reference)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def call_retry_delay(
    attempt: int,
    retries: int,
    *,
    status: int | None,
    retry_after: float | None,
    base: float,
    rand: Callable[[], float],
    ceiling: float,
) -> float | None:
    """The sleep before retry ``attempt`` (1-based) of a call request, or ``None`` when it must not be retried.

    ``status`` is the failed attempt's HTTP status, ``None`` for a transport error. Rules: no more than
    ``retries`` retries; transport errors and 5xx are retried after the :func:`~rtengine.protocol.backoff` schedule,
    or after ``Retry-After`` when the server sent one; 429 is retried only when it carries ``Retry-After``;
    other statuses never. A ``Retry-After`` above ``ceiling`` is not waited for: ``None`` (the caller raises
    the rejection at once, with the server's delay in ``.retry_after``).
    """
    if attempt > retries:
        return None
    if status is None:
        return backoff(base, attempt, rand)
    if not (is_retryable_status(status) or (status == 429 and retry_after is not None)):
        return None
    if retry_after is None:
        return backoff(base, attempt, rand)
    if retry_after > ceiling:
        return None
    return retry_after


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


def _body_text(body: bytes, truncated: bool, scrub: Scrub | None) -> str:
    """An error body as text: scrubbed of secrets whole (before it is cut, so no part of a secret survives the
    cut), then cut to ``_ERROR_BODY_LIMIT`` characters."""
    text = (scrub or Scrubber())(body.decode("utf-8", "replace")).strip()
    if truncated or len(text) > _ERROR_BODY_LIMIT:
        text = text[:_ERROR_BODY_LIMIT] + " [truncated]"
    return text


def interpret_call_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    truncated: bool = False,
    now: float | None = None,
    scrub: Scrub | None = None,
) -> CallAnswer:
    """Turn a call-creation response into a :class:`CallAnswer` or raise the specific error.

    ``headers`` must be case-insensitive for ``location`` and ``retry-after`` (httpx's are); plain dicts are
    looked up in lower case. A non-2xx body is never passed to the SDP check. ``truncated`` says the adapter
    stopped reading the body at its cap (``body`` is the prefix it kept): an error's text is marked as cut, and
    a 2xx answer is refused as too large. ``now`` is for an HTTP-date ``Retry-After`` (see
    :func:`parse_retry_after`). ``scrub`` removes secrets from an error's text (the request's key, see
    :class:`~rtengine.protocol._secrets.Scrubber`; default: credential-shaped strings only).
    """
    if not 200 <= status <= 299:
        text = _body_text(body, truncated, scrub)
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        raise CallRejected(
            _rejection_message(status, text, retry_after), status=status, body=text, retry_after=retry_after
        )
    if truncated:
        raise InvalidAnswer(f"realtime call SDP answer is too large (more than {len(body)} bytes)")
    sdp = body.decode("utf-8", "replace")
    if "\ufffd" in sdp and sdp.encode() != body:  # raised unchained: the decode error's args hold the whole body
        raise InvalidAnswer("failed to decode realtime call SDP response: it is not UTF-8")
    call_id = _call_id(headers.get("location"), scrub or Scrubber())
    try:
        check_sdp(sdp, what="realtime call SDP answer")
    except InvalidSdp as exc:
        raise InvalidAnswer(str(exc)) from exc
    return CallAnswer(sdp, call_id)


def _call_id(location: str | None, scrub: Scrub) -> str:
    """:func:`call_id_from_location`, its error scrubbed (a server may echo a secret in its ``Location``: the text
    is built from the scrubbed header, so no cut leaves part of a secret) and raised unchained (the first error's
    message holds the raw header)."""
    try:
        return call_id_from_location(location)
    except InvalidLocation:
        pass
    try:
        call_id_from_location(None if location is None else scrub(location))
        message = "invalid realtime call Location"  # pragma: no cover - scrubbing never makes a bad Location good
    except InvalidLocation as exc:
        message = scrub(str(exc))
    raise InvalidLocation(message)


def _error_code(body: bytes) -> str | None:
    """``error.code`` of an OpenAI-style JSON error body, or ``None``."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def interpret_hangup_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    truncated: bool = False,
    now: float | None = None,
    scrub: Scrub | None = None,
) -> None:
    """Accept a hang-up answer (any 2xx: the API sends 200 or 204) or raise.

    404 with ``error.code == "call_id_not_found"`` → :class:`~rtengine.CallNotFound` (a :class:`CallRejected`,
    ``.status == 404``); any other non-2xx → :class:`CallRejected` (5xx is retryable, see
    :func:`call_retry_delay`). Error bodies as in :func:`interpret_call_response`.
    """
    check_control_answer("hang-up", status, headers, body, truncated=truncated, now=now, scrub=scrub)


def check_control_answer(
    word: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    truncated: bool = False,
    now: float | None = None,
    scrub: Scrub | None = None,
) -> None:
    """The answer to a control request on a call (``word``: "hang-up", "accept", …): return on any 2xx, else raise
    :class:`~rtengine.CallNotFound` (404 ``call_id_not_found``) or :class:`CallRejected` (the rest), with the
    (scrubbed, cut) body text and ``Retry-After``."""
    if 200 <= status <= 299:
        return
    text = _body_text(body, truncated, scrub)
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    tail = f"; retry after {retry_after:g} s" if retry_after is not None else ""
    if status == 404 and not truncated and _error_code(body) == "call_id_not_found":
        message = f"realtime call {word} failed: call_id_not_found, no such call (HTTP 404): {text}"
        raise CallNotFound(message + tail, status=status, body=text, retry_after=retry_after)
    if status >= 500:
        head = f"realtime call {word} failed: server error (HTTP {status})"
    elif status in (401, 403):
        head = f"realtime call {word} was refused: check the API key (HTTP {status})"
    elif 300 <= status <= 399:
        head = f"realtime call {word} was redirected (HTTP {status}); redirects are never followed"
    else:
        head = f"realtime call {word} was rejected (HTTP {status})"
    message = f"{head}: {text}{tail}" if text else head + tail
    raise CallRejected(message, status=status, body=text, retry_after=retry_after)
