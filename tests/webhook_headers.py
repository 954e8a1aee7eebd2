"""Standard Webhooks headers signed by hand (HMAC-SHA256 over ``id.timestamp.body``), independent of rtengine's
signer and of ``standardwebhooks``: what the webhook tests verify against."""

from __future__ import annotations

import base64
import hashlib
import hmac


def hand_signed(body: bytes, *, key: bytes, timestamp: int, webhook_id: str = "wh_1") -> dict[str, str]:
    """The three headers of a delivery of ``body`` signed with the raw ``key`` (the secret's decoded bytes)."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
