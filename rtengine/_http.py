"""The HTTP adapter: call creation (``POST /realtime/calls``) over httpx.

It only moves bytes: the body comes encoded from :mod:`rtengine._calls`, and the status, headers and body go
back to :func:`~rtengine._calls.interpret_call_response`. httpx exceptions become rtengine errors in exactly
one place, :func:`_translate`. Redirects are never followed (httpx's default), so a 3xx ``Location`` is never
mistaken for a call.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import httpx
import trio

from ._backoff import DEFAULT_BACKOFF_BASE, backoff
from ._calls import CallAnswer, CallBody, interpret_call_response, is_retryable_status
from ._errors import CallRejected, ConnectFailed, RealtimeError

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
        raise ConnectFailed(f"{what}: {type(exc).__name__}: {exc}") from exc


async def post_call(client: httpx.AsyncClient, url: str, body: CallBody, headers: Mapping[str, str]) -> CallAnswer:
    """One call-creation attempt. Raises :class:`~rtengine.CallError` subclasses or :class:`~rtengine.ConnectFailed`.

    Cancellation: the request is abandoned (httpx closes its connection) and ``Cancelled`` propagates.
    """
    request_headers = {**headers, "content-type": body.content_type}
    with _translate("realtime call creation failed"):
        response = await client.post(url, content=body.content, headers=request_headers)
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
) -> CallAnswer:
    """:func:`post_call` with the §2.3 retries: 5xx and transport errors are retried with backoff; 4xx never.

    Raises the last attempt's error. Cancellation: stops at once, also during a backoff sleep.
    """
    attempt = 0
    while True:
        try:
            return await post_call(client, url, body, headers)
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
