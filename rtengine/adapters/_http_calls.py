"""Call creation and hang-up: :class:`HttpCalls` (attempts, retries, deadlines, the cancellation of a call
being created), its defaults, and :func:`_translate`, the one place where httpx exceptions become rtengine errors.
The theory of operation is in :mod:`rtengine.adapters._http`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Final

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
from ..protocol._errors import CallRejected, ConnectFailed, ConnectionLost, RealtimeError
from ..protocol._secrets import Scrubber, redact_url
from ..protocol._util import describe_exception
from ._http_direct import Poster
from ._http_exchange import _Progress, _read_capped
from ._permanent import is_permanent

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
#: How long an attempt's answer is awaited once its body is out (shielded: also after a cancellation, to learn the
#: call id and hang that call up).
DEFAULT_ANSWER_GRACE: Final = 10.0
#: The overall deadline of one ``hangup()`` (retries included).
DEFAULT_HANGUP_TIMEOUT: Final = 5.0


#: Credential-shaped strings and URL secrets out of the text of HTTP library errors.
_SCRUB: Final = Scrubber()


class _translate:
    """The one place where httpx exceptions become rtengine errors (``with _translate(what): ...``).

    A small class rather than a ``@contextmanager`` generator: it is entered on every request of the answer path,
    where building and driving a generator cost more than the request's own bookkeeping."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, RealtimeError):
            return
        if isinstance(exc, httpx.TimeoutException):
            raise ConnectFailed(f"{self._what}: timed out ({type(exc).__name__})") from exc
        if isinstance(exc, httpx.HTTPError):
            message = _SCRUB(f"{self._what}: {describe_exception(exc)}")
            raise ConnectFailed(message, retryable=not is_permanent(exc)) from exc


class HttpCalls:
    """Call creation and hang-up over a pooled ``httpx.AsyncClient``: the engine's ``CallService``.

    ``http`` returns the pooled client (called once per request, so a client created lazily works). ``calls_url`` is
    ``{base}/realtime/calls``. ``retries``, ``backoff_base`` and ``rand`` drive the retries
    (:func:`~rtengine.protocol.backoff`); ``timeout`` bounds one ``create()`` as a whole (a
    :class:`~rtengine.RealtimeClient` may derive it from its ``connect_timeout``); ``retry_after_ceiling``,
    ``max_answer_bytes``, ``max_error_bytes``, ``answer_grace`` and ``hangup_timeout`` as in
    :mod:`rtengine.adapters._http`. ``transport`` returns the transport every request of ``http()`` goes to, if
    known (:func:`~rtengine.adapters._http_direct.pooled_client`): requests then take the short way to it.
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
        transport: Callable[[], httpx.AsyncBaseTransport | None] | None = None,
    ) -> None:
        if not 0 <= retries <= 100:
            raise ValueError("retries must be within 0..100")
        for name, value in (("timeout", timeout), ("answer_grace", answer_grace), ("hangup_timeout", hangup_timeout)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds")
        if retry_after_ceiling < 0 or backoff_base < 0 or max_answer_bytes < 1 or max_error_bytes < 0:
            raise ValueError("retry_after_ceiling and backoff_base must be >= 0, the byte caps positive")
        self._http = http
        #: Sends each request, the short way to the pool when ``transport`` gives one (rtengine.adapters._http_direct).
        self.poster = Poster(http, transport)
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
        return f"<HttpCalls {redact_url(self.calls_url)} retries={self.retries} timeout={self.timeout:g}>"

    # -- create ---------------------------------------------------------------------------------------------

    async def create(
        self, body: CallBody, headers: Mapping[str, str], *, on_sent: Callable[[], None] | None = None
    ) -> CallAnswer:
        """Create a call: the answer, or :class:`~rtengine.CallError` / :class:`~rtengine.ConnectFailed`.

        ``on_sent`` runs at most once, when the first attempt that gets its body out has written it.
        Bounded as a whole by ``timeout``. Cancellation: see :mod:`rtengine.adapters._http` (before the body is sent:
        at once; after: the answer is read within ``answer_grace`` and that call hung up, then ``Cancelled``).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        # One deadline over everything: each attempt's exchange carries it, and no retry sleeps past it.
        return await self._create(body, headers, _Progress(on_sent), trio.current_time() + self.timeout)

    async def _create(
        self, body: CallBody, headers: Mapping[str, str], progress: _Progress, deadline: float
    ) -> CallAnswer:
        attempt = 0
        while True:
            try:
                return await self._attempt(body, headers, progress, deadline)
            except (CallRejected, ConnectFailed) as exc:
                error = exc
            attempt += 1
            await trio.sleep(self._next_delay(error, attempt, deadline, "realtime call creation"))

    def _next_delay(self, error: CallRejected | ConnectFailed, attempt: int, deadline: float, what: str) -> float:
        """The wait before the attempt after ``error`` (the backoff schedule, or ``Retry-After``); raises ``error``
        when it must not be retried or the wait would pass ``deadline``."""
        if isinstance(error, ConnectFailed) and not error.retryable:
            raise error
        rejected = isinstance(error, CallRejected)
        delay = call_retry_delay(
            attempt,
            self.retries,
            status=error.status if rejected else None,
            retry_after=error.retry_after if isinstance(error, CallRejected) else None,
            base=self.backoff_base,
            rand=self.rand,
            ceiling=self.retry_after_ceiling,
        )
        if delay is None or trio.current_time() + delay >= deadline:
            raise error
        log.warning("%s attempt %d failed (%s); retrying in %.0f ms", what, attempt, error, delay * 1000)
        return delay

    async def _attempt(
        self, body: CallBody, headers: Mapping[str, str], progress: _Progress, deadline: float
    ) -> CallAnswer:
        """One POST, in this task, with no task and no scheduler round trip added to the answer path.

        Until the body is on the wire a cancellation aborts it. Once the body is out (the transport asks the body
        stream for more), the exchange is shielded and bounded by ``answer_grace`` (and the overall deadline): the
        server may have made a call, so its answer is read even if the caller is cancelled meanwhile — that call is
        then hung up and ``Cancelled`` raised, unwrapped."""
        exchange = trio.CancelScope(deadline=deadline)

        def guard_the_answer() -> None:
            exchange.shield = True
            exchange.deadline = min(deadline, trio.current_time() + self.answer_grace)

        progress.new_attempt(guard_the_answer)
        answer: CallAnswer | None = None
        failure: RealtimeError | None = None
        try:
            with exchange:
                try:
                    answer = await self._post(body, headers, progress)
                except RealtimeError as exc:
                    if not progress.sent:
                        raise
                    failure = exc  # the caller's cancellation, if it came meanwhile, wins over the answer's error
        finally:
            progress.on_attempt_sent = None
        if exchange.cancelled_caught:
            if trio.current_time() >= deadline and not progress.sent:
                raise ConnectFailed(f"realtime call creation timed out after {self.timeout:g} s")
            log.warning(
                "no answer to the call-creation request in time after sending it; a call may be left behind until "
                "the server ends it"
            )
            await trio.lowlevel.checkpoint_if_cancelled()  # the caller's cancellation, if that is what it was
            if trio.current_time() >= deadline:
                raise ConnectFailed(f"realtime call creation timed out after {self.timeout:g} s")
            # Not retried: the server read the request and may have made a call; a second POST could make another.
            raise ConnectionLost(f"realtime call creation failed: no answer within {self.answer_grace:g} s")
        try:
            await trio.lowlevel.checkpoint_if_cancelled()  # free unless the caller was cancelled meanwhile
        except trio.Cancelled:
            if answer is not None:
                await self._hangup_quietly(answer.call_id, headers)
            raise
        if failure is not None:
            raise failure
        assert answer is not None
        return answer

    async def _post(self, body: CallBody, headers: Mapping[str, str], progress: _Progress) -> CallAnswer:
        with _translate("realtime call creation failed"):
            response = await self.poster.post(
                self.calls_url, headers, body.content, content_type=body.content_type, on_written=progress.mark_sent
            )
            try:
                progress.mark_sent()  # a transport that never iterated the body: the answer implies it was read
                ok = 200 <= response.status_code <= 299
                content, truncated = await _read_capped(response, self.max_answer_bytes if ok else self.max_error_bytes)
            finally:
                await response.aclose()
        scrub = Scrubber.lazy(headers, (self.calls_url,))  # the key a server may echo in its error or its Location
        return interpret_call_response(
            response.status_code, response.headers, content, truncated=truncated, now=time.time(), scrub=scrub
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
                except (CallRejected, ConnectFailed) as exc:
                    error = exc
                attempt += 1
                await trio.sleep(self._next_delay(error, attempt, deadline, "realtime call hang-up"))
        raise ConnectFailed(f"realtime call hang-up timed out after {self.hangup_timeout:g} s")

    async def _post_hangup(self, url: str, headers: Mapping[str, str]) -> None:
        with _translate("realtime call hang-up failed"):
            response = await self.poster.post(url, headers, b"")
            try:
                content, truncated = await _read_capped(response, self.max_error_bytes)
            finally:
                await response.aclose()
        scrub = Scrubber.of(headers, (url,))
        status, answer = response.status_code, response.headers
        interpret_hangup_response(status, answer, content, truncated=truncated, now=time.time(), scrub=scrub)
