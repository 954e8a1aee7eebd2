"""Incoming-call webhooks (``realtime.call.incoming``), pure: the Standard Webhooks checks and the payload.

The API signs each webhook with the Standard Webhooks scheme: headers ``webhook-id``, ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` entries) over
``"{id}.{timestamp}.{body}"`` with the ``whsec_…`` secret. :func:`verify_incoming_call` checks, in this order:

1. the three headers are there and well formed → else :class:`WebhookSignatureError`;
2. the timestamp is within ``tolerance`` seconds of ``now`` → else :class:`WebhookTimestampError` (``.skew``);
3. one ``v1`` signature equals the expected one (constant-time; an empty or malformed digest never matches) →
   else :class:`WebhookSignatureError`;
4. the body is a JSON ``realtime.call.incoming`` event with a usable ``call_id`` → else
   :class:`WebhookPayloadError` or :class:`WebhookEventTypeError`;
5. the id was not seen within the tolerance window (a :class:`ReplayStore` the app owns) → else
   :class:`WebhookReplayError`. Only a delivery that passed 1–4 is recorded: nobody without the secret can put
   ids into the store (or make a genuine delivery look like a replay).

The HMAC itself is computed by a ``signer`` the caller passes (``rtengine.webhooks`` uses the ``standardwebhooks``
package), so this module holds no secret. No message here contains a secret or a signature.
"""

from __future__ import annotations

import binascii
import hmac
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json.scanner import make_scanner
from typing import Any, Final, cast

from ._calls import validate_call_id
from ._errors import ConfigError, InvalidCallId, RemoteError

__all__ = [
    "INCOMING_CALL",
    "MAX_WEBHOOK_ID",
    "IncomingCall",
    "ReplayStore",
    "Signer",
    "SipHeader",
    "WebhookError",
    "WebhookEventTypeError",
    "WebhookPayloadError",
    "WebhookReplayError",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "check_tolerance",
    "parse_incoming_call",
    "verify_checked",
    "verify_incoming_call",
]

INCOMING_CALL: Final = "realtime.call.incoming"
#: Longest ``webhook-id`` accepted (real ones are ``evt_`` + ~32 characters).
MAX_WEBHOOK_ID: Final = 256
#: Most signatures looked at in one ``webhook-signature`` header (key rotation sends two or three).
_MAX_SIGNATURES: Final = 16
#: Length of a ``v1`` digest (HMAC-SHA256): any other length never matches.
_DIGEST_BYTES: Final = 32
#: The standard decoder's scanner (what ``json.JSONDecoder`` reads with): one JSON value at an index → ``(value, end)``.
_SCAN: Final = make_scanner(cast("Any", json.JSONDecoder()))
#: ``(webhook_id, timestamp, body) -> raw HMAC digest`` of the signed content (empty: nothing can match).
Signer = Callable[[str, int, bytes], bytes]


class WebhookError(RemoteError):
    """An incoming webhook was refused (answer it with 400; never act on it)."""


class WebhookSignatureError(WebhookError):
    """The signature headers are missing or malformed, or no signature matches (tampered, or another secret)."""


class WebhookTimestampError(WebhookError):
    """``webhook-timestamp`` is further than the tolerance from now. ``skew`` is ``timestamp - now`` in seconds
    (negative: stale; positive: from the future)."""

    def __init__(self, message: str, *, skew: float) -> None:
        super().__init__(message)
        self.skew = skew


class WebhookReplayError(WebhookError):
    """A webhook with this ``webhook-id`` was already verified within the tolerance window (``webhook_id``)."""

    def __init__(self, message: str, *, webhook_id: str) -> None:
        super().__init__(message)
        self.webhook_id = webhook_id


class WebhookPayloadError(WebhookError):
    """The signed body is not a usable event (not UTF-8 JSON, fields missing or of the wrong type, bad call id)."""


class WebhookEventTypeError(WebhookError):
    """A valid webhook of another event type (``event_type``) than ``realtime.call.incoming``."""

    def __init__(self, message: str, *, event_type: str) -> None:
        super().__init__(message)
        self.event_type = event_type


@dataclass(frozen=True, slots=True)
class SipHeader:
    """One header of the SIP INVITE (untrusted caller data)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A verified ``realtime.call.incoming``: ``call_id`` (validated: safe in a URL), the INVITE's ``sip_headers``
    in order, ``sip_media_security`` (``"srtp"``, ``"rtp"``, another string, or ``None``), the event's
    ``event_id`` and ``created_at``, and the delivery's ``webhook_id`` and ``timestamp``."""

    call_id: str
    sip_headers: tuple[SipHeader, ...]
    sip_media_security: str | None = None
    event_id: str = ""
    created_at: int = 0
    webhook_id: str = ""
    timestamp: int = 0

    def header(self, name: str) -> str | None:
        """The first SIP header called ``name`` (case-insensitive), or ``None``."""
        folded = name.casefold()
        return next((h.value for h in self.sip_headers if h.name.casefold() == folded), None)


@dataclass(slots=True)
class ReplayStore:
    """The ``webhook-id`` values verified within the tolerance window, owned by the app (one per endpoint).

    An id is remembered until its timestamp leaves the window, edge included (a delivery exactly at the edge still
    passes the timestamp check, so its replay is refused too; older deliveries fail the timestamp check anyway), at
    most ``max_ids`` at once (the oldest recorded forgotten first). Each call is O(1) amortised, however full the
    store. Not thread-safe; trio tasks may share it. ``max_ids`` < 1 raises :class:`~rtengine.ConfigError`.
    """

    max_ids: int = 100_000
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_ids, bool) or not isinstance(self.max_ids, int) or self.max_ids < 1:
            raise ConfigError(f"ReplayStore max_ids must be an integer >= 1, not {self.max_ids!r}")

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, webhook_id: object) -> bool:
        return webhook_id in self._seen

    def remember(self, webhook_id: str, *, expires: float, now: float) -> bool:
        """Record ``webhook_id`` until ``expires`` (Unix seconds, inclusive); False if it is already recorded (a
        replay)."""
        seen = self._seen
        until = seen.get(webhook_id)
        if until is not None:
            if until >= now:
                return False
            del seen[webhook_id]
        while seen:  # expired ids at the front (recorded first) go; each id is dropped at most once: O(1) amortised
            oldest_until = seen[next(iter(seen))]
            if oldest_until >= now and len(seen) < self.max_ids:
                break
            seen.popitem(last=False)
        seen[webhook_id] = expires
        return True

    def forget(self, webhook_id: str) -> None:
        """Drop ``webhook_id``: the app could not handle the delivery (it answers 5xx), so a retry of it must pass."""
        self._seen.pop(webhook_id, None)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)  # a dict of lower-case names (h11, the local server) or a case-insensitive mapping
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
        if value is None:
            raise WebhookSignatureError(f"webhook is missing the {name} header")
    value = value.strip()
    if not value:
        raise WebhookSignatureError(f"webhook is missing the {name} header")
    return value


def _timestamp(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise WebhookSignatureError("webhook-timestamp is not a Unix time in seconds")
    return int(text)


def _signatures(header: str) -> list[bytes]:
    """The ``v1`` digests of a ``webhook-signature`` header (other versions skipped, malformed entries refused)."""
    found = []
    entries = header.split()
    if len(entries) > _MAX_SIGNATURES:
        raise WebhookSignatureError(f"webhook-signature has more than {_MAX_SIGNATURES} entries")
    for entry in entries:
        version, comma, encoded = entry.partition(",")
        if not comma:
            raise WebhookSignatureError("webhook-signature entry is not '<version>,<signature>'")
        if version != "v1":
            continue
        try:  # strict: only the base64 alphabet, padding only at the end (as ``b64decode(validate=True)``, cheaper)
            digest = binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError):
            raise WebhookSignatureError("webhook-signature entry is not valid base64") from None
        if len(digest) == _DIGEST_BYTES:  # an empty or truncated entry is never compared (it matches nothing)
            found.append(digest)
    if not found:
        raise WebhookSignatureError("webhook-signature has no usable v1 signature")
    return found


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` if it is a finite number of seconds >= 0, else ``ValueError``."""
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError("tolerance must be a finite number of seconds >= 0")
    return tolerance


def verify_incoming_call(
    headers: Mapping[str, str],
    body: bytes,
    signer: Signer,
    *,
    now: float,
    tolerance: float = 300,
    replay: ReplayStore | None = None,
) -> IncomingCall:
    """Check a delivery (see the module docstring) and return its :class:`IncomingCall`, or raise the specific
    :class:`WebhookError`. ``headers`` may be any case (httpx/h11 headers, a plain dict); ``now`` is Unix seconds."""
    return verify_checked(headers, body, signer, now, check_tolerance(tolerance), replay)


def verify_checked(
    headers: Mapping[str, str],
    body: bytes,
    signer: Signer,
    now: float,
    tolerance: float,
    replay: ReplayStore | None,
) -> IncomingCall:
    """:func:`verify_incoming_call` with a ``tolerance`` already checked (:func:`check_tolerance`): the fast path of
    a verifier made once per endpoint."""
    webhook_id = _header(headers, "webhook-id")
    if len(webhook_id) > MAX_WEBHOOK_ID or not (webhook_id.isascii() and webhook_id.isprintable()):
        raise WebhookSignatureError("webhook-id is not a short printable ASCII string")
    timestamp = _timestamp(_header(headers, "webhook-timestamp"))
    offered = _signatures(_header(headers, "webhook-signature"))
    skew = timestamp - now
    if abs(skew) > tolerance:
        when = "old" if skew < 0 else "far in the future"
        raise WebhookTimestampError(
            f"webhook timestamp is too {when}: {abs(skew):.0f} s off, tolerance {tolerance:g} s", skew=skew
        )
    expected = signer(webhook_id, timestamp, body)
    matched = False
    for signature in offered:  # every entry compared, in constant time each
        matched |= hmac.compare_digest(expected, signature)
    if not matched or len(expected) != _DIGEST_BYTES:  # an empty digest (unsignable body) never matches
        raise WebhookSignatureError("no webhook signature matches (tampered, or signed with another secret)")
    # The payload before the replay store: only a fully verified delivery is recorded.
    call = _parse(body, webhook_id, timestamp)
    if replay is not None and not replay.remember(webhook_id, expires=timestamp + tolerance, now=now):
        raise WebhookReplayError(f"webhook {webhook_id} was already received", webhook_id=webhook_id)
    return call


def parse_incoming_call(body: bytes) -> IncomingCall:
    """The event of a (verified) body: :class:`WebhookPayloadError` / :class:`WebhookEventTypeError` otherwise."""
    return _parse(body, "", 0)


def _load(text: str) -> Any:
    """``json.loads(text)``, with the common case — a document from the first character to the last, as the API
    sends it — read by the decoder's scanner directly, without ``json.loads``'s two whitespace regexes (a third of
    its cost on a cold call). Anything else (leading or trailing whitespace, extra data, no document) goes to
    ``json.loads`` itself, so what is accepted and what raises are exactly ``json.loads``'s."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


def _missing(where: str, kind: str) -> WebhookPayloadError:
    return WebhookPayloadError(f"webhook {where} is missing or not a {kind}")


def _parse(body: bytes, webhook_id: str, timestamp: int) -> IncomingCall:
    """The event of a body (one decode, one ``json.loads``, each field checked once), with the delivery's id and
    timestamp."""
    try:
        event = _load(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WebhookPayloadError("webhook body is not UTF-8 JSON") from None
    if type(event) is not dict:
        raise WebhookPayloadError("webhook body is not a JSON object")
    event_type = event.get("type")
    if type(event_type) is not str:
        raise _missing("type", "str")
    if event_type != INCOMING_CALL:
        raise WebhookEventTypeError(
            f"webhook is a {event_type[:100]!r} event, not {INCOMING_CALL!r}", event_type=event_type[:100]
        )
    data = event.get("data")
    if type(data) is not dict:
        raise _missing("data", "dict")
    call_id = data.get("call_id")
    if type(call_id) is not str:
        raise _missing("data.call_id", "str")
    try:
        call_id = validate_call_id(call_id)
    except InvalidCallId as exc:
        raise WebhookPayloadError(f"webhook data.call_id is unusable: {exc}") from None
    entries = data.get("sip_headers")
    if type(entries) is not list:
        raise _missing("data.sip_headers", "list")
    headers = []
    for entry in entries:
        if type(entry) is not dict:
            raise WebhookPayloadError("webhook data.sip_headers holds a non-object")
        name, value = entry.get("name"), entry.get("value")
        if type(name) is not str:
            raise _missing("sip header name", "str")
        if type(value) is not str:
            raise _missing("sip header value", "str")
        headers.append(SipHeader(name, value))
    security = data.get("sip_media_security")
    if security is not None and type(security) is not str:
        raise WebhookPayloadError("webhook data.sip_media_security is not a string")
    created_at = event.get("created_at", 0)
    if type(created_at) is not int:
        raise WebhookPayloadError("webhook created_at is not an integer")
    event_id = event.get("id", "")
    if type(event_id) is not str:
        raise WebhookPayloadError("webhook id is not a string")
    return IncomingCall(call_id, tuple(headers), security, event_id, created_at, webhook_id, timestamp)


def incoming_call_payload(
    event_id: str, call_id: str, sip_headers: list[tuple[str, str]], created_at: int, security: str | None = "srtp"
) -> dict[str, Any]:
    """A ``realtime.call.incoming`` event as the API sends it (for the local server and tests)."""
    data: dict[str, Any] = {"call_id": call_id, "sip_headers": [{"name": n, "value": v} for n, v in sip_headers]}
    if security is not None:
        data["sip_media_security"] = security
    return {"object": "event", "id": event_id, "type": INCOMING_CALL, "created_at": created_at, "data": data}
