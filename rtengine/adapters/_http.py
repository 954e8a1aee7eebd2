"""The HTTP adapter: call creation (``POST /realtime/calls``) over httpx.

It only moves bytes: the body comes encoded from :mod:`rtengine._calls`, and the status, headers and body go
back to :func:`~rtengine._calls.interpret_call_response`. httpx exceptions become rtengine errors in exactly
one place, :func:`_translate`. Redirects are never followed (httpx's default), so a 3xx ``Location`` is never
mistaken for a call.

``on_sent`` overlaps local work with the round trip: it is called once, as soon as the request body has been
written to the socket and before the response is awaited. The server needs milliseconds to answer; whatever the
caller does in that window (building the conversation that will use the answer) is off the time to answer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager

import httpx
import trio

from ..protocol._backoff import DEFAULT_BACKOFF_BASE, backoff
from ..protocol._calls import CallAnswer, CallBody, interpret_call_response, is_retryable_status
from ..protocol._errors import CallRejected, ConnectFailed, RealtimeError
from ..protocol._util import describe_exception

__all__ = ["create_call", "post_call"]

log = logging.getLogger("rtengine")


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


class _ThenNotify:
    """A one-chunk request body that calls ``on_sent`` when the transport asks for more, i.e. once the chunk
    has been written. Sent with an explicit ``Content-Length``, so the bytes on the wire are exactly those of a
    plain ``content=bytes`` request."""

    __slots__ = ("_content", "_on_sent")

    def __init__(self, content: bytes, on_sent: Callable[[], None] | None) -> None:
        self._content: bytes | None = content
        self._on_sent = on_sent

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._content is not None:
            chunk, self._content = self._content, None
            return chunk
        if self._on_sent is not None:
            on_sent, self._on_sent = self._on_sent, None
            on_sent()
        raise StopAsyncIteration


async def post_call(
    client: httpx.AsyncClient,
    url: str,
    body: CallBody,
    headers: Mapping[str, str],
    *,
    on_sent: Callable[[], None] | None = None,
) -> CallAnswer:
    """One call-creation attempt. Raises :class:`~rtengine.CallError` subclasses or :class:`~rtengine.ConnectFailed`.

    ``on_sent`` (optional) runs once the body is on the wire, while the response is awaited (see the module
    docstring); it must not block. A transport that never reads the body never calls it.
    Cancellation: the request is abandoned (httpx closes its connection) and ``Cancelled`` propagates.
    """
    request_headers = {**headers, "content-type": body.content_type}
    if on_sent is None:
        content: bytes | _ThenNotify = body.content
    else:
        request_headers["content-length"] = str(len(body.content))
        content = _ThenNotify(body.content, on_sent)
    with _translate("realtime call creation failed"):
        response = await client.post(url, content=content, headers=request_headers)
    return interpret_call_response(response.status_code, response.headers, response.content)


async def create_call(
    client: httpx.AsyncClient,
    url: str,
    body: CallBody,
    headers: Mapping[str, str],
    *,
    retries: int = 4,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    rand: Callable[[], float] = random.random,
    on_sent: Callable[[], None] | None = None,
) -> CallAnswer:
    """:func:`post_call` with the §2.3 retries: 5xx and transport errors are retried with backoff; 4xx never.

    ``on_sent`` runs at most once, when the first attempt that gets its body out has sent it.
    Raises the last attempt's error. Cancellation: stops at once, also during a backoff sleep.
    """
    attempt = 0
    pending = [on_sent] if on_sent is not None else []

    def notify_once() -> None:
        if pending:
            pending.pop()()

    while True:
        try:
            return await post_call(client, url, body, headers, on_sent=notify_once if pending else None)
        except CallRejected as exc:
            if not is_retryable_status(exc.status) or attempt >= retries:
                raise
            error: RealtimeError = exc
        except ConnectFailed as exc:
            if attempt >= retries:
                raise
            error = exc
        attempt += 1
        delay = backoff(backoff_base, attempt, rand)
        log.warning("realtime call creation attempt %d failed (%s); retrying in %.0f ms", attempt, error, delay * 1000)
        await trio.sleep(delay)
