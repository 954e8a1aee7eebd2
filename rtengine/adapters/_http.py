"""The HTTP adapter: call creation (``POST /realtime/calls``) and hang-up (``POST /realtime/calls/{id}/hangup``).

Theory of operation
-------------------
:class:`HttpCalls` is the engine's :class:`~rtengine.engine._seams.CallService`. It only moves bytes: bodies come
encoded from :mod:`rtengine.protocol._calls`, and every status, header and body goes back to
:func:`~rtengine.protocol.interpret_call_response` / :func:`~rtengine.protocol.interpret_hangup_response`; when
and how long to wait before a retry is :func:`~rtengine.protocol.call_retry_delay`. httpx exceptions become
rtengine errors in exactly one place, :func:`_translate`, raised ``from`` the original. Redirects are never
followed (httpx's default), so a 3xx ``Location`` is never mistaken for a call. No message carries a header.

* **One deadline.** ``create()`` as a whole (every attempt, every read, every sleep) is bounded by ``timeout``;
  past it → :class:`~rtengine.ConnectFailed` "timed out after N s". A retry whose delay would end past the
  deadline is not attempted: the last error is raised at once. ``hangup()`` is bounded by ``hangup_timeout``.
* **Bounded reads.** Responses are streamed. An answer body past ``max_answer_bytes`` →
  :class:`~rtengine.InvalidAnswer`; an error body is read up to ``max_error_bytes`` and the rejection carries
  the text marked ``[truncated]``. Reading stops there: the connection is closed, not drained.
* **Retries.** 5xx and transport errors are retried with the §3.4 backoff, or after the server's
  ``Retry-After`` (seconds or HTTP-date) when present, also on a 429 that carries one. A ``Retry-After`` above
  ``retry_after_ceiling`` is not waited for: the :class:`~rtengine.CallRejected` is raised at once with
  ``.retry_after`` set to the server's delay.
* **No generator left to the GC.** The request body is a one-chunk stream whose iterator is a plain object, not
  an async generator (httpx's own ``ByteStream`` is one, and a cancellation during the write would leave it
  suspended for trio to finalize, with a ``ResourceWarning``). A response abandoned at its cap is closed and its
  (httpx/httpcore generator) iterator run to its end on the closed connection, so each generator finishes.
* **``on_sent``** overlaps local work with the round trip: it is called once per ``create()``, as soon as an
  attempt's request body has been written, before its response is awaited. It comes from httpcore's ``trace``
  request extension (``http11.send_request_body.complete``, or ``http2.…``); when a transport reports no body
  event (a custom transport, e.g. ``httpx.MockTransport``), it is called when the response headers arrive. It
  must not block or raise.

Cancellation
------------
* Cancelled **before the body was sent**: the request is abandoned at once (httpx closes the connection);
  nothing reached the server, so no call exists. ``Cancelled`` propagates.
* Cancelled **after the body was sent**: the server may have created a call. The answer is still read, shielded,
  for at most ``answer_grace`` seconds, to learn the call id; that call is then hung up (shielded, bounded by
  ``hangup_timeout``; a failure is logged at WARNING, never raised), and ``Cancelled`` propagates. The same
  happens when the overall ``timeout`` expires mid-request (then :class:`~rtengine.ConnectFailed` is raised).
  So a cancelled ``create()`` can take up to ``answer_grace + hangup_timeout`` to return. If no call id could be
  learned (no answer within the grace, or a transport without trace events cancelled just after its write), a
  WARNING says a call may be left behind until the server ends it.
* ``hangup()`` cancelled: ``Cancelled`` propagates at once; the call may or may not have ended.

Mechanism: each attempt runs its exchange in a child task, in a shielded cancel scope, while the calling task
waits for it in the caller's (unshielded) context. When the caller is cancelled, the calling task wakes and either
cancels the exchange (body not sent) or gives it a deadline of now + ``answer_grace`` (body sent), waits for it
(shielded, so bounded by that), hangs up the call it answered, and re-raises ``Cancelled`` at a checkpoint: the
caller sees a plain ``Cancelled``, never an exception group.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import httpx
import trio

from ..protocol._backoff import DEFAULT_BACKOFF_BASE, DEFAULT_RETRIES
from ..protocol._calls import (
    CallAnswer,
    CallBody,
    call_retry_delay,
    interpret_call_response,
    interpret_hangup_response,
    validate_call_id,
)
from ..protocol._errors import CallRejected, ConnectFailed, RealtimeError
from ..protocol._util import describe_exception

__all__ = [
    "DEFAULT_ANSWER_GRACE",
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_HANGUP_TIMEOUT",
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_MAX_ERROR_BYTES",
    "DEFAULT_RETRY_AFTER_CEILING",
    "HttpCalls",
    "create_call",
    "post_call",
]

log = logging.getLogger("rtengine")

#: The overall deadline of one ``create()``: 5 attempts with the default backoff sleep ≈ 3 s, which leaves the
#: server ≈ 1.4 s per attempt; a healthy call creation takes well under a second.
DEFAULT_CALL_TIMEOUT: Final = 10.0
#: The longest ``Retry-After`` that is waited for; a longer one fails at once.
DEFAULT_RETRY_AFTER_CEILING: Final = 10.0
#: An SDP answer is a few KiB; anything past this is refused.
DEFAULT_MAX_ANSWER_BYTES: Final = 1 << 20
#: How much of an error body is read (the rejection's text is further cut to 2000 characters).
DEFAULT_MAX_ERROR_BYTES: Final = 64 << 10
#: After a cancellation with the body sent: how long the answer is still awaited to learn the call id.
DEFAULT_ANSWER_GRACE: Final = 2.0
#: The overall deadline of one ``hangup()`` (retries included).
DEFAULT_HANGUP_TIMEOUT: Final = 5.0

#: httpcore trace events (``{http11,http2}.<phase>.<started|complete|failed>``).
_BODY_SENT: Final = ".send_request_body.complete"
_BODY_FAILED: Final = ".send_request_body.failed"
_HEADERS_STARTED: Final = ".receive_response_headers.started"
#: Chunks still pulled from an abandoned response (closed) so httpx's generators finish; a bound, not a target.
_DRAIN_CHUNKS: Final = 64


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """The one place where httpx exceptions become rtengine errors."""
    try:
        yield
    except RealtimeError:
        raise
    except httpx.TimeoutException as exc:
        raise ConnectFailed(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise ConnectFailed(f"{what}: {describe_exception(exc)}") from exc


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
    """A request body of known length whose iteration is not an async generator (see the module docstring)."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._content)

    async def aclose(self) -> None:
        pass


class _Progress:
    """What one ``create()`` knows about its current attempt's request; fed by httpcore's trace events."""

    __slots__ = ("body_event", "on_sent", "sent")

    def __init__(self, on_sent: Callable[[], None] | None) -> None:
        self.on_sent = on_sent  # pending until the first attempt gets its body out
        self.sent = False
        self.body_event = False

    def new_attempt(self) -> None:
        self.sent = False
        self.body_event = False

    def mark_sent(self) -> None:
        if self.sent:
            return
        self.sent = True
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


class HttpCalls:
    """Call creation and hang-up over a pooled ``httpx.AsyncClient``: the engine's ``CallService``.

    ``http`` returns the pooled client (called once per request, so a client created lazily works).
    ``calls_url`` is ``{base}/realtime/calls``. ``retries``, ``backoff_base`` and ``rand`` drive the §2.3
    retries; ``timeout`` bounds one ``create()`` as a whole (a :class:`~rtengine.RealtimeClient` may derive it
    from its ``connect_timeout``); ``retry_after_ceiling``, ``max_answer_bytes``, ``max_error_bytes``,
    ``answer_grace`` and ``hangup_timeout`` as in the module docstring.
    """

    def __init__(
        self,
        http: Callable[[], httpx.AsyncClient],
        calls_url: str,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff_base: float = DEFAULT_BACKOFF_BASE,
        rand: Callable[[], float] = random.random,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        retry_after_ceiling: float = DEFAULT_RETRY_AFTER_CEILING,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        max_error_bytes: int = DEFAULT_MAX_ERROR_BYTES,
        answer_grace: float = DEFAULT_ANSWER_GRACE,
        hangup_timeout: float = DEFAULT_HANGUP_TIMEOUT,
    ) -> None:
        if not 0 <= retries <= 100:
            raise ValueError("retries must be within 0..100")
        for name, value in (("timeout", timeout), ("answer_grace", answer_grace), ("hangup_timeout", hangup_timeout)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds")
        if retry_after_ceiling < 0 or backoff_base < 0 or max_answer_bytes < 1 or max_error_bytes < 0:
            raise ValueError("retry_after_ceiling and backoff_base must be >= 0, the byte caps positive")
        self._http = http
        self.calls_url = calls_url.rstrip("/")
        self.retries = retries
        self.backoff_base = backoff_base
        self.rand = rand
        self.timeout = timeout
        self.retry_after_ceiling = retry_after_ceiling
        self.max_answer_bytes = max_answer_bytes
        self.max_error_bytes = max_error_bytes
        self.answer_grace = answer_grace
        self.hangup_timeout = hangup_timeout

    def __repr__(self) -> str:
        return f"<HttpCalls {self.calls_url} retries={self.retries} timeout={self.timeout:g}>"

    # -- create ---------------------------------------------------------------------------------------------

    async def create(
        self, body: CallBody, headers: Mapping[str, str], *, on_sent: Callable[[], None] | None = None
    ) -> CallAnswer:
        """Create a call: the answer, or :class:`~rtengine.CallError` / :class:`~rtengine.ConnectFailed`.

        ``on_sent`` runs at most once, when the first attempt that gets its body out has written it.
        Bounded as a whole by ``timeout``. Cancellation: see the module docstring (before the body is sent:
        at once; after: the answer is read within ``answer_grace`` and that call hung up, then ``Cancelled``).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        progress = _Progress(on_sent)
        deadline = trio.current_time() + self.timeout
        with trio.move_on_at(deadline):
            return await self._create(body, headers, progress, deadline)
        raise ConnectFailed(f"realtime call creation timed out after {self.timeout:g} s")

    async def _create(
        self, body: CallBody, headers: Mapping[str, str], progress: _Progress, deadline: float
    ) -> CallAnswer:
        attempt = 0
        while True:
            try:
                return await self._attempt(body, headers, progress)
            except CallRejected as exc:
                error: RealtimeError = exc
                status: int | None = exc.status
                retry_after = exc.retry_after
            except ConnectFailed as exc:
                error, status, retry_after = exc, None, None
            attempt += 1
            delay = call_retry_delay(
                attempt,
                self.retries,
                status=status,
                retry_after=retry_after,
                base=self.backoff_base,
                rand=self.rand,
                ceiling=self.retry_after_ceiling,
            )
            if delay is None or trio.current_time() + delay >= deadline:
                raise error
            log.warning(
                "realtime call creation attempt %d failed (%s); retrying in %.0f ms", attempt, error, delay * 1000
            )
            await trio.sleep(delay)

    async def _attempt(self, body: CallBody, headers: Mapping[str, str], progress: _Progress) -> CallAnswer:
        """One POST: its exchange runs shielded in a child task while this task watches for a cancellation."""
        progress.new_attempt()
        exchange = trio.CancelScope(shield=True)
        done = trio.Event()
        outcome: list[CallAnswer | Exception] = []
        interrupted = False

        async def run() -> None:
            try:
                with exchange:
                    try:
                        outcome.append(await self._post(body, headers, progress))
                    except Exception as exc:  # carried out of the nursery unwrapped, re-raised below
                        outcome.append(exc)
            finally:
                done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            try:
                await done.wait()
            except trio.Cancelled:
                # The caller (or the overall deadline) cancelled us. Body not sent: abort now. Sent: the server may
                # have made a call; give the answer answer_grace to arrive. Cancelled is raised again below, by the
                # checkpoint after the hang-up, so it leaves this attempt unwrapped.
                interrupted = True
                if progress.sent:
                    exchange.deadline = min(exchange.deadline, trio.current_time() + self.answer_grace)
                else:
                    exchange.cancel()
                with trio.CancelScope(shield=True):
                    await done.wait()
        result = outcome[0] if outcome else None
        if not interrupted:
            if isinstance(result, Exception):
                raise result
            assert result is not None  # the exchange is cancelled only after an interruption
            return result
        if isinstance(result, CallAnswer):
            await self._hangup_quietly(result.call_id, headers)
        elif result is None and progress.sent:
            log.warning(
                "realtime call creation was interrupted after the request was sent and no answer came within "
                "%g s; a call may be left behind until the server ends it",
                self.answer_grace,
            )
        await trio.lowlevel.checkpoint()  # raises the caller's Cancelled (or the deadline's)
        raise ConnectFailed("realtime call creation was interrupted")  # the cancellation was withdrawn meanwhile

    async def _post(self, body: CallBody, headers: Mapping[str, str], progress: _Progress) -> CallAnswer:
        client = self._http()
        with _translate("realtime call creation failed"):
            request = client.build_request(
                "POST",
                self.calls_url,
                content=body.content,  # sets Content-Length; the stream is replaced just below
                headers={**headers, "content-type": body.content_type},
                extensions={"trace": progress.trace},
            )
            request.stream = _BodyStream(body.content)
            response = await client.send(request, stream=True)
            try:
                progress.mark_sent()  # a transport without trace events: the answer implies the body was read
                ok = 200 <= response.status_code <= 299
                content, truncated = await _read_capped(response, self.max_answer_bytes if ok else self.max_error_bytes)
            finally:
                await response.aclose()
        return interpret_call_response(
            response.status_code, response.headers, content, truncated=truncated, now=time.time()
        )

    async def _hangup_quietly(self, call_id: str, headers: Mapping[str, str]) -> None:
        """Hang up a call whose creation was cancelled: shielded, bounded, failures logged."""
        with trio.CancelScope(shield=True):
            try:
                await self.hangup(call_id, headers)
            except RealtimeError as exc:
                log.warning("could not hang up realtime call %s after its creation was cancelled: %s", call_id, exc)
            else:
                log.info("realtime call %s hung up: its creation was cancelled", call_id)

    # -- hangup ---------------------------------------------------------------------------------------------

    async def hangup(self, call_id: str, headers: Mapping[str, str]) -> None:
        """End a call (``POST {calls_url}/{call_id}/hangup``, empty body).

        The id is validated before it enters the URL (:class:`~rtengine.InvalidCallId`). 2xx → done; 404
        ``call_id_not_found`` → :class:`~rtengine.CallNotFound`; other 4xx → :class:`~rtengine.CallRejected`;
        5xx and transport errors are retried with backoff (a hang-up is idempotent). Bounded as a whole by
        ``hangup_timeout`` → :class:`~rtengine.ConnectFailed`. Cancellation: ``Cancelled`` propagates at once,
        and the call may or may not have ended.
        """
        url = f"{self.calls_url}/{validate_call_id(call_id)}/hangup"
        deadline = trio.current_time() + self.hangup_timeout
        with trio.move_on_at(deadline):
            attempt = 0
            while True:
                try:
                    await self._post_hangup(url, headers)
                    return
                except CallRejected as exc:
                    error: RealtimeError = exc
                    status: int | None = exc.status
                    retry_after = exc.retry_after
                except ConnectFailed as exc:
                    error, status, retry_after = exc, None, None
                attempt += 1
                delay = call_retry_delay(
                    attempt,
                    self.retries,
                    status=status,
                    retry_after=retry_after,
                    base=self.backoff_base,
                    rand=self.rand,
                    ceiling=self.retry_after_ceiling,
                )
                if delay is None or trio.current_time() + delay >= deadline:
                    raise error
                log.warning(
                    "realtime call hang-up attempt %d failed (%s); retrying in %.0f ms", attempt, error, delay * 1000
                )
                await trio.sleep(delay)
        raise ConnectFailed(f"realtime call hang-up timed out after {self.hangup_timeout:g} s")

    async def _post_hangup(self, url: str, headers: Mapping[str, str]) -> None:
        client = self._http()
        with _translate("realtime call hang-up failed"):
            request = client.build_request("POST", url, headers=dict(headers))
            request.stream = _BodyStream(b"")
            response = await client.send(request, stream=True)
            try:
                content, truncated = await _read_capped(response, self.max_error_bytes)
            finally:
                await response.aclose()
        interpret_hangup_response(response.status_code, response.headers, content, truncated=truncated, now=time.time())


async def post_call(
    client: httpx.AsyncClient,
    url: str,
    body: CallBody,
    headers: Mapping[str, str],
    *,
    on_sent: Callable[[], None] | None = None,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> CallAnswer:
    """One call-creation attempt (no retries): :meth:`HttpCalls.create` with ``retries=0``."""
    calls = HttpCalls(lambda: client, url, retries=0, timeout=call_timeout)
    return await calls.create(body, headers, on_sent=on_sent)


async def create_call(
    client: httpx.AsyncClient,
    url: str,
    body: CallBody,
    headers: Mapping[str, str],
    *,
    retries: int = DEFAULT_RETRIES,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    rand: Callable[[], float] = random.random,
    on_sent: Callable[[], None] | None = None,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
) -> CallAnswer:
    """:meth:`HttpCalls.create` on ``client`` with the given retry settings (the engine's current entry point)."""
    calls = HttpCalls(lambda: client, url, retries=retries, backoff_base=backoff_base, rand=rand, timeout=call_timeout)
    return await calls.create(body, headers, on_sent=on_sent)
