"""The narrow handle a conversation's jobs get (:class:`Core`), and what a job is (:data:`Job`): never the whole
:class:`~rtengine.engine._conversation.Conversation`. Re-exported by :mod:`~rtengine.engine._conversation`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ._alarm import Alarm

if TYPE_CHECKING:
    from ..protocol._brain import Brain
    from ..protocol._lifecycle import Closed, ConversationStats, Error
    from ..protocol._session import SessionConfig
    from ._follow import Follow
    from ._inputs import Inputs
    from ._outlet import Outlet
    from ._rejoin import Carry
    from ._timeline import Timeline

__all__ = ["Core", "Job"]


@dataclass(eq=False, slots=True)
class Core:
    """The narrow handle a job gets: never the whole :class:`~rtengine.engine._conversation.Conversation`."""

    session: SessionConfig
    stats: ConversationStats
    brain: Brain
    inputs: Inputs
    outlet: Outlet
    timeline: Timeline
    #: ``end(closed, error)``: claim the end (True once); ``closed=None`` ends without a ``Closed`` (replaced).
    end: Callable[[Closed | None, Error | None], bool]
    #: What follows the conversation across sessions (history, the session's expiry): websocket reconnect/rotation.
    follow: Follow | None = None
    #: The conversation's one timer (kept by the owner watch): a session's rotation, the warning before a cap.
    alarm: Alarm = field(default_factory=Alarm)
    #: The work nursery (set once the runner entered it): a job starts there the tasks that may outlive its own
    #: (a websocket's next session), so they live in the work scope and end with the conversation.
    nursery: trio.Nursery | None = None
    #: What a websocket's sessions carry from one to the next: discarded (counted) once every task has ended.
    carry: Carry | None = None


#: A job: runs in the work scope; ``task_status.started()`` when the conversation may start (inline jobs).
Job = Callable[[Core, "trio.TaskStatus[None]"], Awaitable[None]]
