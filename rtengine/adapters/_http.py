"""The HTTP adapter: call creation (``POST /realtime/calls``) and hang-up (``POST /realtime/calls/{id}/hangup``).

Theory of operation
-------------------
:class:`HttpCalls` is the engine's :class:`~rtengine.engine._seams.CallService`. It only moves bytes: bodies come
encoded from :mod:`rtengine.protocol._calls`, and every status, header and body goes back to
:func:`~rtengine.protocol.interpret_call_response` / :func:`~rtengine.protocol.interpret_hangup_response`; when
and how long to wait before a retry is :func:`~rtengine.protocol.call_retry_delay`. httpx exceptions become
rtengine errors in exactly one place, :func:`~rtengine.adapters._http_calls._translate`, raised ``from`` the
original. Redirects are never followed (httpx's default), so a 3xx ``Location`` is never mistaken for a call. No
message carries a header.

* **One deadline.** ``create()`` as a whole (every attempt, every read, every sleep) is bounded by ``timeout``;
  past it → :class:`~rtengine.ConnectFailed` "timed out after N s". A retry whose delay would end past the
  deadline is not attempted: the last error is raised at once. ``hangup()`` is bounded by ``hangup_timeout``.
* **Bounded reads.** Responses are streamed. An answer body past ``max_answer_bytes`` →
  :class:`~rtengine.InvalidAnswer`; an error body is read up to ``max_error_bytes`` and the rejection carries
  the text marked ``[truncated]``. Reading stops there: the connection is closed, not drained.
* **Retries.** 5xx and transport errors are retried with the :func:`~rtengine.protocol.backoff` schedule, or after the
  server's ``Retry-After`` (seconds or HTTP-date) when present, also on a 429 that carries one. A ``Retry-After`` above
  ``retry_after_ceiling`` is not waited for: the :class:`~rtengine.CallRejected` is raised at once with ``.retry_after``
  set to the server's delay.
* **No generator left to the GC.** The request body is a one-chunk stream whose iterator is a plain object, not
  an async generator (httpx's own ``ByteStream`` is one, and a cancellation during the write would leave it
  suspended for trio to finalize, with a ``ResourceWarning``). A response abandoned at its cap is closed and its
  (httpx/httpcore generator) iterator run to its end on the closed connection, so each generator finishes.
* **The short way to the pool.** Every request goes through :class:`~rtengine.adapters._http_direct.Poster`: on the
  client rtengine builds, straight to its connection pool's transport with the headers, cookies and timeouts the
  client would give it (≈120 µs of CPU less per request than ``client.send``); on a client passed in, or one with
  hooks, auth or an environment proxy, through ``client.send`` as before.
* **``on_sent``** overlaps local work with the round trip: it is called once per ``create()``, as soon as an
  attempt's request body has been written, before its response is awaited. It comes from the body stream itself:
  the transport writes each chunk before it asks for the next, so when it asks for more after the one chunk, the
  body is on the wire (httpcore's ``trace`` extension says the same, but building its events cost ≈0.1 ms of CPU
  per call creation); when a transport never iterates the body (a custom one), it is called when the response
  arrives. It must not block or raise.

Cancellation
------------
* Cancelled **before the body was sent**: the request is abandoned at once (httpx closes the connection);
  nothing reached the server, so no call exists. ``Cancelled`` propagates.
* Cancelled **after the body was sent**: the server may have created a call. The answer is still read, shielded,
  within ``answer_grace`` seconds of the body being sent (the bound on every attempt's answer: 10 s by default,
  ten times a real call creation), to learn the call id; that call is then hung up (shielded, bounded by
  ``hangup_timeout``; a failure is logged at WARNING, never raised), and ``Cancelled`` propagates — also when the
  answer is an error (the cancellation wins). So a cancelled ``create()`` can take up to ``answer_grace +
  hangup_timeout`` to return. The overall ``timeout`` bounds that wait too: at the deadline there is no answer and
  no call id, and :class:`~rtengine.ConnectFailed` is raised. If no call id could be learned (no answer in time, or
  a transport that never iterated the body, cancelled after its write), a WARNING says a call may be left behind
  until the server ends it. An attempt whose body was read but which got no answer within ``answer_grace`` is not
  retried (a second POST could make a second call): it raises :class:`~rtengine.ConnectionLost`.
* ``hangup()`` cancelled: ``Cancelled`` propagates at once; the call may or may not have ended.

Mechanism: each attempt runs its exchange in the calling task, with no task added to the answer path (a watcher
task per attempt cost ≈2 % of a loopback call creation in scheduler round trips, measured paired). Until the body
is on the wire the exchange is cancellable as usual. The body stream's report that the body is out shields the
exchange and gives it the deadline ``answer_grace`` (or the overall deadline, if sooner). After the answer a
checkpoint that costs nothing unless the caller was cancelled meanwhile tells whether to hang that call up and
re-raise ``Cancelled`` — unwrapped: the caller never sees an exception group.

Layout: :class:`HttpCalls`, its defaults and ``_translate`` are in :mod:`rtengine.adapters._http_calls`; the body
stream (and its ``on_sent`` report) and the capped reads in :mod:`rtengine.adapters._http_exchange`; this module
keeps every name importable from here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import httpx

from ..protocol._backoff import DEFAULT_BACKOFF_BASE, DEFAULT_RETRIES
from ..protocol._calls import CallAnswer, CallBody
from ._http_calls import DEFAULT_ANSWER_GRACE as DEFAULT_ANSWER_GRACE
from ._http_calls import DEFAULT_CALL_TIMEOUT as DEFAULT_CALL_TIMEOUT
from ._http_calls import DEFAULT_HANGUP_TIMEOUT as DEFAULT_HANGUP_TIMEOUT
from ._http_calls import DEFAULT_MAX_ANSWER_BYTES as DEFAULT_MAX_ANSWER_BYTES
from ._http_calls import DEFAULT_MAX_ERROR_BYTES as DEFAULT_MAX_ERROR_BYTES
from ._http_calls import DEFAULT_RETRY_AFTER_CEILING as DEFAULT_RETRY_AFTER_CEILING
from ._http_calls import HttpCalls as HttpCalls
from ._http_calls import _translate as _translate
from ._http_calls import log as log
from ._http_exchange import _DRAIN_CHUNKS as _DRAIN_CHUNKS
from ._http_exchange import _abandon as _abandon
from ._http_exchange import _BodyStream as _BodyStream
from ._http_exchange import _OneChunk as _OneChunk
from ._http_exchange import _Progress as _Progress
from ._http_exchange import _read_capped as _read_capped

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
