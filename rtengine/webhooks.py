"""Verify the API's incoming-call webhooks (``realtime.call.incoming``, Standard Webhooks signatures)::

    replay = rtengine.webhooks.ReplayStore()          # one per endpoint, owned by the app
    try:
        call = rtengine.webhooks.verify(request_headers, request_body, secret, replay=replay)
    except rtengine.webhooks.WebhookError:
        ...                                           # answer 400, never act on it
    async with rtengine.open_conversation(client, session, accept_call_id=call.call_id) as conv:
        ...

``verify`` returns an :class:`IncomingCall` or raises one :class:`WebhookError` subclass per failure:
:class:`WebhookSignatureError` (headers missing or malformed, no signature matches: tampered or another secret),
:class:`WebhookTimestampError` (stale, or from the future, beyond ``tolerance``), :class:`WebhookReplayError`
(the ``webhook-id`` was verified before within the window), :class:`WebhookPayloadError` (not JSON, fields
missing, an unusable call id), :class:`WebhookEventTypeError` (another event type). The HMAC is the
``standardwebhooks`` package's; comparisons are constant-time; the secret never appears in a repr, exception or log.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from .adapters._webhook_signing import WebhookSigner
from .protocol._webhooks import (
    IncomingCall,
    ReplayStore,
    SipHeader,
    WebhookError,
    WebhookEventTypeError,
    WebhookPayloadError,
    WebhookReplayError,
    WebhookSignatureError,
    WebhookTimestampError,
    verify_incoming_call,
)

__all__ = [
    "IncomingCall",
    "ReplayStore",
    "SipHeader",
    "WebhookError",
    "WebhookEventTypeError",
    "WebhookPayloadError",
    "WebhookReplayError",
    "WebhookSignatureError",
    "WebhookSigner",
    "WebhookTimestampError",
    "verify",
]


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes | WebhookSigner,
    tolerance: float = 300,
    *,
    replay: ReplayStore | None = None,
    now: float | None = None,
) -> IncomingCall:
    """Verify one delivery and return its :class:`IncomingCall` (see the module docstring for the errors).

    ``headers`` in any case; ``body`` exactly as received (bytes; text is encoded as UTF-8); ``secret`` the
    endpoint's ``whsec_…`` secret (or a :class:`WebhookSigner` made from it once); ``tolerance`` the allowed
    clock skew in seconds, both ways; ``replay`` the app's :class:`ReplayStore` (without one, replays are not
    detected); ``now`` Unix seconds (default: the wall clock). A malformed secret raises
    :class:`~rtengine.ConfigError`.
    """
    signer = secret if isinstance(secret, WebhookSigner) else WebhookSigner(secret)
    try:
        raw = body.encode("utf-8") if isinstance(body, str) else body
    except UnicodeEncodeError:  # lone surrogates: no delivery is such text
        raise WebhookPayloadError("webhook body is text that cannot be encoded as UTF-8") from None
    return verify_incoming_call(
        headers,
        raw,
        signer.digest,
        now=time.time() if now is None else now,
        tolerance=tolerance,
        replay=replay,
    )
