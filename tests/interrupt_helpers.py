"""The scaffolding of the Ctrl-C tests (``tests/engine/test_interrupt.py``, ``test_interrupt_webrtc.py``): a real
SIGINT raised at one point of the engine's end path, and a conversation run until the deferred ``KeyboardInterrupt``
escapes it."""

from __future__ import annotations

import functools
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from engine_helpers import engine_tasks

import rtengine
from rtengine.events import ConversationEvent

#: Where a SIGINT is raised: (class, method, ``"before"`` or ``"after"`` the original runs).
Point = tuple[type, str, str]


def ctrl_c_at(monkeypatch: pytest.MonkeyPatch, points: dict[str, Point], point: str, fired: list[str]) -> None:
    """Wrap the method of ``points[point]`` so that its first call (for ``mark``: its first ``mark("closed")``)
    raises a real SIGINT before or after the original runs, and notes ``point`` in ``fired``."""
    owner, name, when = points[point]
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def interrupted(self: object, *args: Any) -> Any:
        fire = not fired and (name != "mark" or args == ("closed",))
        if fire and when == "before":
            fired.append(point)
            signal.raise_signal(signal.SIGINT)
        result = original(self, *args)
        if fire and when == "after":
            fired.append(point)
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(owner, name, interrupted)


def only_keyboard_interrupts(exc: BaseException) -> bool:
    """``exc`` is a ``KeyboardInterrupt``, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        match, rest = exc.split(KeyboardInterrupt)
        return match is not None and rest is None
    return isinstance(exc, KeyboardInterrupt)


async def until_interrupted(
    client: rtengine.RealtimeClient,
    session: rtengine.SessionConfig,
    body: Callable[[rtengine.Conversation], Awaitable[list[ConversationEvent]]],
    **options: Any,
) -> tuple[list[ConversationEvent], BaseException | None, list[str]]:
    """Open a conversation, run ``body`` (which ends it, or lets the server end it) and wait at most 5 s for the
    deferred Ctrl-C, which lands at a checkpoint of this (the main) task; then the events ``body`` returned and the
    ones still buffered, what escaped the block, and the engine tasks left after it. All within 20 s."""
    events: list[ConversationEvent] = []
    escaped: BaseException | None = None
    with trio.fail_after(20):
        try:
            async with rtengine.open_conversation(client, session, **options) as conv:
                events += await body(conv)
                await trio.sleep(5)
        except BaseException as exc:
            escaped = exc
        while True:
            try:
                events.append(conv.events.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return events, escaped, engine_tasks()
