"""The plumbing of one HTTP exchange under :class:`~rtengine.adapters._http_calls.HttpCalls`: the request body
stream, the capped (and abandoned) response read, and the httpcore trace events behind ``on_sent`` (see
:mod:`rtengine.adapters._http` for why each is shaped so).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import httpx

#: httpcore trace events (``{http11,http2}.<phase>.<started|complete|failed>``).
_BODY_SENT: Final = ".send_request_body.complete"
_BODY_FAILED: Final = ".send_request_body.failed"
_HEADERS_STARTED: Final = ".receive_response_headers.started"
#: Chunks still pulled from an abandoned response (closed) so httpx's generators finish; a bound, not a target.
_DRAIN_CHUNKS: Final = 64


class _OneChunk:
    """An async iterator over one chunk that is a plain object: nothing for the GC to finalize if abandoned."""

    __slots__ = ("_chunk",)

    def __init__(self, chunk: bytes) -> None:
        self._chunk: bytes | None = chunk

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        if self._chunk is None:
            raise StopAsyncIteration
        chunk, self._chunk = self._chunk, None
        return chunk


class _BodyStream(httpx.AsyncByteStream):
    """A request body of known length whose iteration is not an async generator (see :mod:`rtengine.adapters._http`)."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._content)

    async def aclose(self) -> None:
        pass


class _Progress:
    """What one ``create()`` knows about its current attempt's request; fed by httpcore's trace events."""

    __slots__ = ("body_event", "on_attempt_sent", "on_sent", "sent")

    def __init__(self, on_sent: Callable[[], None] | None) -> None:
        self.on_sent = on_sent  # pending until the first attempt gets its body out
        self.sent = False
        self.body_event = False
        #: Called when the current attempt's body is out (the attempt then guards its answer).
        self.on_attempt_sent: Callable[[], None] | None = None

    def new_attempt(self, on_attempt_sent: Callable[[], None] | None = None) -> None:
        self.sent = False
        self.body_event = False
        self.on_attempt_sent = on_attempt_sent

    def mark_sent(self) -> None:
        if self.sent:
            return
        self.sent = True
        if self.on_attempt_sent is not None:
            self.on_attempt_sent()
        if self.on_sent is not None:
            on_sent, self.on_sent = self.on_sent, None
            on_sent()

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith(_BODY_SENT):
            self.body_event = True
            self.mark_sent()
        elif event.endswith(_BODY_FAILED):
            self.body_event = True
        elif event.endswith(_HEADERS_STARTED) and not self.body_event:
            self.mark_sent()


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The (decoded) body up to ``limit`` bytes, and whether it was cut there."""
    chunks: list[bytes] = []
    size = 0
    iterator = response.aiter_bytes()
    async for chunk in iterator:
        if len(chunk) > limit - size:
            chunks.append(chunk[: limit - size])
            await _abandon(response, iterator)
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


async def _abandon(response: httpx.Response, iterator: AsyncIterator[bytes]) -> None:
    """Close a response read only in part, then let its iterator run to its end.

    httpx and httpcore stream a body through a stack of async generators; closing the outermost one leaves the
    inner ones suspended for the GC. Pulling on after the connection is closed makes the innermost fail, which
    ends them all. Bounded by ``_DRAIN_CHUNKS`` (what httpcore had already buffered).
    """
    await response.aclose()
    pulled = 0
    try:
        async for _ in iterator:
            pulled += 1
            if pulled >= _DRAIN_CHUNKS:
                break
    except (httpx.HTTPError, RuntimeError):
        pass  # the expected end: reading a closed connection
