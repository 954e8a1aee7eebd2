"""Keeping one connection's bug inside that connection.

A bug in the local server (an exception while handling one client event, streaming one response, or running one
call) must become that connection's or call's error — logged once, at ERROR — and never reach the server's
nursery, where it would end every other call. Cancellation and other ``BaseException``\\ s pass through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["guarded", "split_bug"]

log = logging.getLogger("rtengine.server")


def split_bug(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """``(what must propagate, the bug)`` of an exception: a bug is any ``Exception`` (in a group: the
    ``Exception`` leaves); cancellation, ``KeyboardInterrupt`` and the like propagate."""
    if isinstance(exc, BaseExceptionGroup):
        bug, rest = exc.split(Exception)
        return rest, bug
    if isinstance(exc, Exception):
        return None, exc
    return exc, None


async def guarded(
    what: str,
    fn: Callable[..., Awaitable[Any]],
    *args: Any,
    on_bug: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Run ``fn(*args)``; a bug it raises is logged once (naming ``what``), then ``on_bug`` cleans up (shielded),
    and it goes no further."""
    try:
        await fn(*args)
    except BaseException as exc:
        passing, bug = split_bug(exc)
        if bug is None:
            raise
        log.exception("bug in the local server (%s); only it was ended", what, exc_info=bug)
        if on_bug is not None:
            with trio.CancelScope(shield=True):
                await on_bug()
        if passing is not None:
            raise passing from None
