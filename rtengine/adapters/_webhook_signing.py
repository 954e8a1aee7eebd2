"""Standard Webhooks signing, held to the ``standardwebhooks`` package (the scheme's maintained implementation).

:class:`WebhookSigner` decodes a ``whsec_…`` secret once and computes the ``v1`` HMAC-SHA256 of a delivery over the
scheme's signed content ``"{id}.{timestamp}.{body}"``: what ``standardwebhooks.Webhook.sign`` computes (its
:meth:`~WebhookSigner.library_digest` is ``sign`` itself, and a property test holds the two equal), without its
per-call work on the verification path — the round trips through ``datetime``, text and base64, and the HMAC's key
schedule: the keyed ``hmac`` object is made once per secret and copied per delivery (the standard library's
``HMAC.copy``, meant for this). The rest of the verification (headers, tolerance, constant-time comparison, replays,
the payload) is rtengine's sans-IO :mod:`rtengine.protocol._webhooks`, because the package's own ``verify`` has a
fixed tolerance, reads the wall clock and lets malformed headers escape as ``ValueError``.
The secret never appears in a repr, an exception or a log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Final

import standardwebhooks

from ..protocol._errors import ConfigError

__all__ = ["WebhookSigner"]

#: The Unix seconds a ``datetime`` can hold (0001-01-01 to 9999-12-31T23:59:59Z): the package's ``sign`` cannot sign
#: outside them.
_FIRST_SECOND: Final = -62_135_596_800
_LAST_SECOND: Final = 253_402_300_799


class WebhookSigner:
    """A webhook secret (``whsec_<base64>``, or the raw key bytes), ready to sign. ``repr`` hides the secret."""

    __slots__ = ("_mac", "_webhook")

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
        self._mac = hmac.new(key, digestmod=hashlib.sha256)  # keyed once; copied per delivery

    def __repr__(self) -> str:
        return "<WebhookSigner secret=hidden>"

    def digest(self, webhook_id: str, timestamp: int, body: bytes) -> bytes:
        """The raw ``v1`` HMAC-SHA256 of ``"{webhook_id}.{timestamp}.{body}"`` (``body`` must be UTF-8; a body that
        is not cannot have been signed by the scheme, which signs text; nor can a timestamp a datetime cannot hold,
        past year 9999: an empty digest, which matches nothing)."""
        if not _FIRST_SECOND <= timestamp <= _LAST_SECOND:
            return b""
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return b""
        mac = self._mac.copy()
        mac.update(b"%s.%d.%s" % (webhook_id.encode("utf-8"), timestamp, body))
        return mac.digest()

    def library_digest(self, webhook_id: str, timestamp: int, body: bytes) -> bytes:
        """:meth:`digest` through ``standardwebhooks.Webhook.sign`` itself (the reference the tests hold it to)."""
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
