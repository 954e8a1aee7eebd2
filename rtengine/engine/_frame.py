"""One server frame on a conversation's socket: parse it, let the :class:`~rtengine.protocol.Brain` decide, write
what it answers, mark the timeline, end or deliver (the reader of :mod:`rtengine.engine._sideband` calls it for
each message; a refused ``update_session`` is taken back out of the conversation's session here).

Cancellation: while a write or the delivery waits, the frame's reaction is partly done — a payload not yet written
is carried by the link to the next socket, as :meth:`_Link.write` says; nothing is delivered twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..protocol._commands import undo_update
from ..protocol._parse import parse_server_event

if TYPE_CHECKING:
    from ._sideband import _Link

__all__ = ["handle_frame"]

log = logging.getLogger("rtengine")


async def handle_frame(link: _Link, message: str | bytes) -> bool:
    """One server frame: parse, react, deliver. False once it ended the conversation."""
    core = link.core
    brain, outlet, stats, timeline = core.brain, core.outlet, core.stats, core.timeline
    stats.frames_received += 1
    event = parse_server_event(message, brain.output_format)
    if core.follow is not None:
        core.follow.observe(event)
    reaction = brain.server_event(event)
    for index, payload in enumerate(reaction.send):
        if not await link.write(payload, reaction.send[index + 1 :]):
            break  # the rest is carried (or the conversation ended); read on to learn how the socket ended
    if reaction.mark is not None and reaction.mark not in timeline:
        elapsed = timeline.mark(reaction.mark)
        phase = reaction.mark.replace("_", " ")
        log.info("realtime %s elapsed_ms=%.0f total_elapsed_ms=%.0f", phase, elapsed, timeline.total_ms())
    if reaction.end is not None:
        error, closed = reaction.end
        core.end(closed, error)
        return False
    if reaction.undo is not None:  # a refused update_session: not kept, not replayed
        core.session = undo_update(core.session, reaction.undo)
    if reaction.deliver is not None and not outlet.offer(reaction.deliver, len(message)):
        await outlet.forward(reaction.deliver, len(message))
    return True
