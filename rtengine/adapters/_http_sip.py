"""The Calls API's control requests for SIP calls over the pooled httpx client: accept, reject, refer.

Same error mapping as call creation and hang-up (:mod:`rtengine.adapters._http_calls`): httpx exceptions become
:class:`~rtengine.ConnectFailed` in one place, answers are judged by the sans-IO
:func:`~rtengine.protocol._sip.interpret_control_response`. Retries follow :data:`~rtengine.protocol._sip.RETRIED`:
``reject`` is retried after a 5xx, a 429 with ``Retry-After`` or a transport error, with the call-creation backoff (a
404 on a retry means the earlier attempt got through: success); ``accept`` and ``refer`` are retried only when the
connection could not be made (nothing was sent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

import httpx
import trio

from ..protocol._errors import CallNotFound, CallRejected, ConnectFailed
from ..protocol._secrets import Scrubber, redact_url
from ..protocol._sip import RETRIED, ControlAction, control_url, interpret_control_response
from ._http_calls import HttpCalls, _translate
from ._http_exchange import _read_capped

__all__ = ["HttpCallControl"]

_JSON: Final = "application/json"
#: The translation's words per action (built once, not per request).
_FAILED: Final[Mapping[ControlAction, str]] = {
    action: f"realtime call {action} failed" for action in ("accept", "reject", "refer", "hangup")
}


class HttpCallControl:
    """``POST {calls_url}/{call_id}/{accept|reject|refer}``, with the settings (retries, backoff, byte caps) of the
    client's :class:`~rtengine.adapters._http_calls.HttpCalls`. Each request is bounded by ``calls.timeout`` as a
    whole (retries included) → :class:`~rtengine.ConnectFailed`. Cancellation: ``Cancelled`` propagates at once;
    the request may or may not have taken effect.

    The success path is one attempt with nothing around it but the deadline's scope: the URL is built once, the
    request goes the short way to the pool when it can (:mod:`rtengine.adapters._http_direct`: the merged headers kept
    per read-only mapping), and the retry loop (with its backoff and its log lines) is entered only after a failure
    that may be retried.
    """

    __slots__ = ("_calls",)

    def __init__(self, calls: HttpCalls) -> None:
        self._calls = calls

    def __repr__(self) -> str:
        return f"<HttpCallControl {redact_url(self._calls.calls_url)}>"

    async def send(
        self,
        action: ControlAction,
        call_id: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """One control request (``body`` is the JSON body); the id is validated before it enters the URL.
        ``on_sent`` runs at most once, when an attempt's body is on the wire (the engine builds the conversation
        while the accept is in flight)."""
        calls = self._calls
        url = control_url(calls.calls_url, call_id, action)
        deadline = trio.current_time() + calls.timeout
        with trio.move_on_at(deadline):
            try:
                await self._post(action, url, body, headers, on_sent)
                return
            except CallNotFound:
                raise  # the first attempt's 404: the call is unknown or already ended
            except (CallRejected, ConnectFailed) as exc:
                if action not in RETRIED and not _nothing_sent(exc):
                    raise
                error: CallRejected | ConnectFailed = exc
            await self._retry(action, url, body, headers, error, deadline, on_sent)
            return
        raise ConnectFailed(f"realtime call {action} timed out after {calls.timeout:g} s")

    async def _retry(
        self,
        action: ControlAction,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        error: CallRejected | ConnectFailed,
        deadline: float,
        on_sent: Callable[[], None] | None,
    ) -> None:
        """The attempts after a first one that failed with ``error`` (retried: see the module docstring)."""
        calls = self._calls
        word = f"realtime call {action}"
        on_sent = None if isinstance(error, CallRejected) else on_sent
        attempt = 1
        while True:
            await trio.sleep(calls._next_delay(error, attempt, deadline, word))
            try:
                await self._post(action, url, body, headers, on_sent)
                return
            except CallNotFound:
                if action in RETRIED:
                    return  # an earlier attempt got through; the call is gone either way
                raise
            except (CallRejected, ConnectFailed) as exc:
                error = exc
                on_sent = None if isinstance(exc, CallRejected) else on_sent
                if action not in RETRIED and not _nothing_sent(exc):
                    raise
            attempt += 1

    async def _post(
        self,
        action: ControlAction,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        with _translate(_FAILED[action]):
            response = await self._calls.poster.post(url, headers, body, content_type=_JSON, on_written=on_sent)
            try:
                content, truncated = await _read_capped(response, self._calls.max_error_bytes)
            finally:
                await response.aclose()
        status, answer = response.status_code, response.headers
        if 200 <= status <= 299:  # the answer path: nothing to interpret, no scrubber to build
            return
        scrub = Scrubber.of(headers, (url,))  # the key a server may echo in its error
        interpret_control_response(action, status, answer, content, truncated=truncated, now=time.time(), scrub=scrub)


def _nothing_sent(error: CallRejected | ConnectFailed) -> bool:
    """True when the request cannot have reached the server: the TCP/TLS connection was never made."""
    return isinstance(error, ConnectFailed) and isinstance(error.__cause__, (httpx.ConnectError, httpx.ConnectTimeout))
