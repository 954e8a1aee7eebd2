"""The plumbing of one HTTP exchange under :class:`~rtengine.adapters._http_calls.HttpCalls`: the request body
stream (which also says when the body is out, behind ``on_sent``) and the capped (and abandoned) response read (see
:mod:`rtengine.adapters._http` for why each is shaped so).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Final

import httpx

#: Chunks still pulled from an abandoned response (closed) so httpx's generators finish; a bound, not a target.
_DRAIN_CHUNKS: Final = 64


class _OneChunk:
    """An async iterator over one chunk that is a plain object: nothing for the GC to finalize if abandoned.

    Asked for more after its chunk, it calls ``on_written``: the transport writes each chunk before it asks for
    the next, so the body is on the wire by then. (httpcore's ``trace`` extension says the same, but building its
    events cost ≈0.1 ms of CPU on every call creation.)"""

    __slots__ = ("_chunk", "_on_written")

    def __init__(self, chunk: bytes, on_written: Callable[[], None] | None) -> None:
        self._chunk: bytes | None = chunk
        self._on_written = on_written

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        if self._chunk is None:
            if self._on_written is not None:
                on_written, self._on_written = self._on_written, None
                on_written()
            raise StopAsyncIteration
        chunk, self._chunk = self._chunk, None
        return chunk


class _BodyStream(httpx.AsyncByteStream):
    """A request body of known length whose iteration is not an async generator (see :mod:`rtengine.adapters._http`).

    ``on_written`` runs once the body has been handed to the transport in full (each iteration)."""

    def __init__(self, content: bytes, on_written: Callable[[], None] | None = None) -> None:
        self._content = content
        self._on_written = on_written

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._content, self._on_written)

    async def aclose(self) -> None:
        pass


class _Progress:
    """What one ``create()`` knows about its current attempt's request; fed by the body stream."""

    __slots__ = ("on_attempt_sent", "on_sent", "sent")

    def __init__(self, on_sent: Callable[[], None] | None) -> None:
        self.on_sent = on_sent  # pending until the first attempt gets its body out
        self.sent = False
        #: Called when the current attempt's body is out (the attempt then guards its answer).
        self.on_attempt_sent: Callable[[], None] | None = None

    def new_attempt(self, on_attempt_sent: Callable[[], None] | None = None) -> None:
        self.sent = False
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


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The (decoded) body up to ``limit`` bytes, and whether it was cut there.

    Decoded here, chunk by chunk, with httpx's own decoder for the ``Content-Encoding`` (what ``aiter_bytes`` does):
    a body that fails to decode (``httpx.DecodingError``) is then abandoned like one cut at its cap — with
    ``aiter_bytes``, its raw iterator (and the generators under it) would be left suspended for the GC."""
    if response.is_stream_consumed:  # read already (an in-memory transport's answer): its content is decoded
        content = response.content
        return content[:limit], len(content) > limit
    chunks: list[bytes] = []
    size = 0
    iterator = response.aiter_raw()
    decoder = response._get_content_decoder()  # httpx's, as aiter_bytes uses (identity when not encoded)
    try:
        async for raw in iterator:
            chunk = decoder.decode(raw)
            if len(chunk) > limit - size:
                chunks.append(chunk[: limit - size])
                await _abandon(response, iterator)
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
        chunk = decoder.flush()
    except httpx.DecodingError:
        await _abandon(response, iterator)
        raise
    if len(chunk) > limit - size:
        return b"".join(chunks) + chunk[: limit - size], True
    return b"".join(chunks) + chunk, False


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
