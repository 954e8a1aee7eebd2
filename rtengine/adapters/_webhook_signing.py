"""Standard Webhooks signing through the ``standardwebhooks`` package (the scheme's maintained implementation).

:class:`WebhookSigner` decodes a ``whsec_…`` secret once and computes the ``v1`` HMAC-SHA256 of a delivery with
``standardwebhooks.Webhook.sign``; the rest of the verification (headers, tolerance, constant-time comparison,
replays, the payload) is rtengine's sans-IO :mod:`rtengine.protocol._webhooks`, because the package's own
``verify`` has a fixed tolerance, reads the wall clock and lets malformed headers escape as ``ValueError``.
The secret never appears in a repr, an exception or a log.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import standardwebhooks

from ..protocol._errors import ConfigError

__all__ = ["WebhookSigner"]


class WebhookSigner:
    """A webhook secret (``whsec_<base64>``, or the raw key bytes), ready to sign. ``repr`` hides the secret."""

    __slots__ = ("_webhook",)

    def __init__(self, secret: str | bytes) -> None:
        if isinstance(secret, str):
            encoded = secret.removeprefix("whsec_")
            try:  # strict: a mistyped secret must fail here, not verify nothing later
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except (binascii.Error, ValueError):
                key = None  # raised below, unchained: a decode error's context may hold the secret in its args
            if key is None:
                raise ConfigError("webhook secret is not 'whsec_' followed by base64")
        else:
            key = secret
        if not key:
            raise ConfigError("webhook secret is empty")
        self._webhook = standardwebhooks.Webhook(key)

    def __repr__(self) -> str:
        return "<WebhookSigner secret=hidden>"

    def digest(self, webhook_id: str, timestamp: int, body: bytes) -> bytes:
        """The raw ``v1`` HMAC-SHA256 of ``"{webhook_id}.{timestamp}.{body}"`` (``body`` must be UTF-8; a body that
        is not cannot have been signed by the scheme, which signs text; nor can a timestamp a datetime cannot hold,
        past year 9999: an empty digest, which matches nothing)."""
        try:
            text = body.decode("utf-8")
            when = datetime.fromtimestamp(timestamp, tz=UTC)
        except (UnicodeDecodeError, ValueError, OverflowError, OSError):
            return b""
        signed = self._webhook.sign(webhook_id, when, text)
        return base64.b64decode(signed.partition(",")[2])

    def headers(self, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The three headers of a delivery of ``body`` (what the API sends; the local server uses this)."""
        signature = base64.b64encode(self.digest(webhook_id, timestamp, body)).decode("ascii")
        return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{signature}"}
