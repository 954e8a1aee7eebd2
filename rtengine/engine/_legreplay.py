"""A new leg's history replay, written on its sideband and finished on a re-joined one after a loss.

The decisions — which items are still owed, which answer settles which item — are the sans-IO
:class:`~rtengine.protocol._replaying.ReplayProgress`; this module writes the owed items on a socket and reads the
server's answers (handled as :func:`~rtengine.engine._follow.replay_into` does: the echoes are followed, not
delivered again; a refusal is one non-fatal ``Error``). A write that fails, or a read that ends, is a loss like any
other on a call's sideband: the leg re-joins, and the items not answered yet are written again on the new socket —
those whose write went out are first asked for (``conversation.item.retrieve``), so none is written twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from ..protocol._errors import ConnectionLost
from ..protocol._events import ItemAdded, ServerErrorEvent, UnknownEvent
from ..protocol._lifecycle import SocketEnd
from ..protocol._parse import parse_server_event
from ..protocol._payloads import encode
from ._follow import _GOING, REPLAY_WAIT, _Answers

if TYPE_CHECKING:
    from ..protocol._replaying import ReplayProgress
    from ._conversation import Core
    from ._seams import Socket

__all__ = ["LOST_WAIT", "replay_owed"]

log = logging.getLogger("rtengine")

#: After a replay write failed, how long the answers already on their way are read (so they are not owed again).
LOST_WAIT: Final = 1.0


async def replay_owed(core: Core, sock: Socket, progress: ReplayProgress) -> SocketEnd | None:
    """Write the items ``progress`` still owes on ``sock`` and read until each was answered: None once done (or
    given up after ``REPLAY_WAIT``), the ``SocketEnd`` when the socket was lost meanwhile (the rest stays owed).
    The conversation ending meanwhile (a fatal server error) cancels the work, so nothing returns after it."""
    ours: set[str] = set()
    answers = _Answers(core, sock, ours)
    if (ended := await _ask(core, sock, progress, answers)) is not None:
        return ended
    failed: ConnectionLost | None = None
    for payload in progress.writing():
        stamped = core.brain.stamp(dict(payload))
        progress.written(payload, stamped["event_id"])
        ours.add(stamped["event_id"])
        try:
            await sock.send(encode(stamped))
        except ConnectionLost as exc:
            failed = exc
            break
        core.stats.items_replayed += 1
    wait = LOST_WAIT if failed is not None else REPLAY_WAIT
    with trio.move_on_after(wait) as waited:
        while not progress.done:
            message = await sock.receive()
            if not isinstance(message, SocketEnd):
                event = parse_server_event(message, core.brain.output_format)
                if isinstance(event, ItemAdded):
                    progress.added_item(event.item_id)
                elif isinstance(event, ServerErrorEvent):
                    progress.refused_event(event.error_event_id)
            ended = await answers.take(message, count=False)
            if ended is None:
                await trio.sleep_forever()  # the end was claimed: the work scope is cancelled
            if ended is not _GOING:
                return ended
    if failed is not None:
        return SocketEnd(clean=False, detail=f"a replay write failed: {failed}")
    if waited.cancelled_caught:
        missing = progress.give_up()
        core.stats.replay_refused += missing
        log.warning("realtime replay not confirmed within %.0f s (%d items unanswered)", REPLAY_WAIT, missing)
    return None


async def _ask(core: Core, sock: Socket, progress: ReplayProgress, answers: _Answers) -> SocketEnd | None:
    """Ask for the items in doubt and read the answers (bounded): the ``SocketEnd`` if the socket ended, else None."""
    try:
        for item_id in progress.in_doubt():
            stamped = core.brain.stamp({"type": "conversation.item.retrieve", "item_id": item_id})
            progress.asking(item_id, stamped["event_id"])
            await sock.send(encode(stamped))
    except ConnectionLost as exc:
        return SocketEnd(clean=False, detail=f"a replay write failed: {exc}")
    with trio.move_on_after(REPLAY_WAIT):
        while progress.asked:
            message = await sock.receive()
            if isinstance(message, SocketEnd):
                return message
            event = parse_server_event(message, core.brain.output_format)
            if isinstance(event, UnknownEvent) and event.type == "conversation.item.retrieved":
                item = event.raw.get("item")
                if progress.retrieved(item.get("id") if isinstance(item, dict) else None):
                    continue
            if isinstance(event, ServerErrorEvent) and progress.not_found(event.error_event_id):
                continue
            if await answers.take(message) is None:
                await trio.sleep_forever()  # the end was claimed: the work scope is cancelled
    return None
