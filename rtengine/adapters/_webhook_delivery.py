"""Posting signed webhooks over httpx (the local server's SIP simulation plays the API's webhook sender).

:class:`WebhookSender` owns one pooled client; :meth:`WebhookSender.deliver` makes one ``POST`` of a body with its
Standard Webhooks headers and returns the answer's status, or raises :class:`~rtengine.ConnectFailed` for a
transport error or a timeout (what the API retries, with 5xx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import trio

from ..protocol._errors import ConnectFailed
from ..protocol._util import describe_exception

__all__ = ["WebhookSender", "open_webhook_sender"]


class WebhookSender:
    """Delivers webhooks with one client (no redirects followed, like the API's sender)."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False, headers={"user-agent": "rtengine-local-server/0.1"})

    def __repr__(self) -> str:
        return "<WebhookSender>"

    async def deliver(self, url: str, headers: Mapping[str, str], body: bytes, *, seconds: float) -> int:
        """POST ``body`` (JSON) to ``url`` within ``seconds``; the response status, or
        :class:`~rtengine.ConnectFailed`."""
        try:
            response = await self._client.post(
                url, content=body, headers={**headers, "content-type": "application/json"}, timeout=seconds
            )
        except httpx.TimeoutException as exc:
            raise ConnectFailed(f"webhook delivery timed out after {seconds:g} s") from exc
        except httpx.HTTPError as exc:
            raise ConnectFailed(f"webhook delivery failed: {describe_exception(exc)}") from exc
        return response.status_code

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._client.aclose()


@asynccontextmanager
async def open_webhook_sender() -> AsyncIterator[WebhookSender]:
    """A :class:`WebhookSender` for the block; its client is closed (shielded) when the block is left."""
    sender = WebhookSender()
    try:
        yield sender
    finally:
        await sender.aclose()
