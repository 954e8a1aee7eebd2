"""Posting signed webhooks over httpx (the local server's SIP simulation plays the API's webhook sender).

:class:`WebhookSender` owns one pooled client; :meth:`WebhookSender.deliver` makes one ``POST`` of a body with its
Standard Webhooks headers and returns the answer's status, or raises :class:`~rtengine.ConnectFailed` for a
transport error or a timeout (what the API retries, with 5xx); :meth:`WebhookSender.wait_reachable` waits for a
webhook URL to accept a TCP connection (an app started after the server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

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

    async def wait_reachable(self, url: str, *, seconds: float, every: float = 0.25) -> bool:
        """Wait until ``url``'s host accepts a TCP connection (closed at once: nothing is sent), at most
        ``seconds``: True once it did, False when the time ran out (or the URL has no host)."""
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        if not parts.hostname:
            return False
        with trio.move_on_after(seconds):
            while True:
                try:
                    with trio.fail_after(max(every, 1.0)):
                        stream = await trio.open_tcp_stream(parts.hostname, port)
                except (OSError, trio.TooSlowError):
                    await trio.sleep(every)
                    continue
                await stream.aclose()
                return True
        return False

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
