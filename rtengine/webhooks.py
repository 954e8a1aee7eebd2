"""Verify the API's incoming-call webhooks (``realtime.call.incoming``, Standard Webhooks signatures)::

    verifier = rtengine.webhooks.Verifier(secret)     # one per endpoint: the secret decoded once, a replay store
    try:
        call = verifier.verify(request_headers, request_body)
    except rtengine.webhooks.WebhookError:
        ...                                           # answer 400, never act on it
    async with rtengine.open_conversation(client, session, accept_call_id=call.call_id) as conv:
        ...

:meth:`Verifier.verify` is the fast path; :func:`verify` does the same checks for one delivery
(``verify(headers, body, secret, replay=store)``), decoding the secret each time unless given a
:class:`WebhookSigner`. Each returns an :class:`IncomingCall` or raises one :class:`WebhookError` subclass per failure:
:class:`WebhookSignatureError` (headers missing or malformed, no signature matches: tampered or another secret),
:class:`WebhookTimestampError` (stale, or from the future, beyond ``tolerance``), :class:`WebhookReplayError`
(the ``webhook-id`` was verified before within the window), :class:`WebhookPayloadError` (not JSON, fields
missing, an unusable call id), :class:`WebhookEventTypeError` (another event type). The HMAC is the
``standardwebhooks`` package's; comparisons are constant-time; the secret never appears in a repr, exception or log.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

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
    check_tolerance,
    verify_checked,
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
    "Verifier",
    "verify",
]

#: The allowed clock skew by default, both ways (the Standard Webhooks libraries use 5 minutes).
DEFAULT_TOLERANCE: Final = 300.0


def _utf8(body: bytes | str) -> bytes:
    if type(body) is bytes:
        return body
    try:
        return body.encode("utf-8") if isinstance(body, str) else bytes(body)
    except UnicodeEncodeError:  # lone surrogates: no delivery is such text
        raise WebhookPayloadError("webhook body is text that cannot be encoded as UTF-8") from None


class Verifier:
    """The webhook endpoint's verifier: the secret decoded once (``secret``: ``whsec_…``, the raw key bytes or a
    :class:`WebhookSigner`; a malformed one raises :class:`~rtengine.ConfigError` here), the allowed clock skew
    ``tolerance`` (seconds, both ways; ``ValueError`` unless finite and >= 0; read-only), and the
    :class:`ReplayStore` it records verified ids in (``replay``; a new one by default, as ``.replay``). Not
    thread-safe; trio tasks may share it. ``repr`` hides the secret."""

    __slots__ = ("_signer", "_tolerance", "replay")

    def __init__(
        self,
        secret: str | bytes | WebhookSigner,
        tolerance: float = DEFAULT_TOLERANCE,
        *,
        replay: ReplayStore | None = None,
    ) -> None:
        self._signer = secret if isinstance(secret, WebhookSigner) else WebhookSigner(secret)
        self._tolerance = check_tolerance(tolerance)
        self.replay = ReplayStore() if replay is None else replay

    @property
    def tolerance(self) -> float:
        """The allowed clock skew in seconds, both ways (checked once, when the verifier is made)."""
        return self._tolerance

    def __repr__(self) -> str:
        return f"<Verifier secret=hidden tolerance={self.tolerance:g} seen={len(self.replay)}>"

    def verify(self, headers: Mapping[str, str], body: bytes | str, *, now: float | None = None) -> IncomingCall:
        """Verify one delivery and return its :class:`IncomingCall`, or raise its :class:`WebhookError` (see the
        module docstring); a verified id is recorded, so its replay within the window raises
        :class:`WebhookReplayError` (``verifier.replay.forget(id)`` when the app could not handle it, so that the
        API's retry passes). ``headers`` in any case; ``body`` exactly as received; ``now`` Unix seconds (default:
        the wall clock)."""
        return verify_checked(
            headers,
            _utf8(body),
            self._signer.digest,
            time.time() if now is None else now,
            self._tolerance,
            self.replay,
        )


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes | WebhookSigner,
    tolerance: float = DEFAULT_TOLERANCE,
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
    return verify_checked(
        headers,
        _utf8(body),
        signer.digest,
        time.time() if now is None else now,
        check_tolerance(tolerance),
        replay,
    )
