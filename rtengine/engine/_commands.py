"""The conversation commands beyond texts, tools and responses: :class:`Commands`, mixed into
:class:`~rtengine.Conversation` — ``update_session``, ``send_event``, ``commit_audio``/``clear_audio`` (push-to-talk)
and ``clear_output_audio`` (WebRTC barge-in) — and :func:`decide`, what the control pump writes for a command.

Each command is queued in the conversation's one control FIFO (see :mod:`~rtengine.engine._inputs`): it is
accepted from the moment ``open_conversation`` returns (buffered while a sideband joins), goes out in call order
with the other control inputs, and counts against ``Capacities.tools``. The decisions (what each becomes on the
wire, the audio barrier, the session diff, the sequencing of a raw ``response.create``) are in
:mod:`rtengine.protocol._commands`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from ..protocol._brain import Command
from ..protocol._commands import (
    AudioBuffer,
    ClearOutputAudio,
    UpdatePayload,
    UpdateSession,
    apply_update,
    check_update,
    client_event,
    field_paths,
    session_changes,
)
from ..protocol._errors import ConfigError
from ..protocol._lifecycle import Error
from ..protocol._session import SessionConfig

if TYPE_CHECKING:
    from ._conversation import Core
    from ._inputs import Inputs

__all__ = ["Commands", "decide"]

log = logging.getLogger("rtengine")

Payload = dict[str, Any]


async def decide(core: Core, command: Command) -> tuple[Payload, ...]:
    """The payloads to write for ``command``, taken from the control FIFO. A session update is applied here to the
    session the conversation holds (what every later re-join, reconnect and rotation sends) and only its
    difference is written (an :class:`UpdatePayload`: should the server refuse it, the brain's reaction says so
    and the reader takes it back out of the session, :func:`~rtengine.protocol._commands.undo_update`); an
    update that no longer applies (a concurrent one changed what it relied on) is
    dropped with a non-fatal ``Error("invalid_session_update")``."""
    if not isinstance(command, UpdateSession):
        return core.brain.command(command)
    try:
        session = apply_update(core.session, command.changes)
        force = core.brain.raw_session & field_paths(command.changes)  # a raw session.update may have set them
        payload = session_changes(core.session, session, force)
    except ConfigError as exc:
        log.warning("session update not applied: %s", exc)
        await core.outlet.forward(Error(f"session update not applied: {exc}", "invalid_session_update", False))
        return ()
    undo = {name: (getattr(core.session, name), getattr(session, name)) for name in command.changes}
    core.session = session
    core.brain.raw_session -= force
    return (UpdatePayload(payload, undo),)


class Commands:
    """The commands of :class:`~rtengine.Conversation` defined here (see the module docstring)."""

    __slots__ = ()

    _core: Core
    _inputs: Inputs
    transport: Literal["websocket", "webrtc", "sip"]

    @property
    def session(self) -> SessionConfig:
        """The session as rtengine applied it: the configured one, with every ``update_session`` taken so far. It is
        what a re-join, a reconnect and a rotation send."""
        return self._core.session

    async def update_session(self, **changes: Any) -> None:
        """Change the session mid-call: ``await conv.update_session(instructions="…", voice="…")``.

        ``changes`` are :class:`~rtengine.SessionConfig` fields (not ``model`` or ``type``; a field cannot be
        removed, so ``None`` is refused — switch server VAD off with ``TURN_DETECTION_DISABLED``). They are checked
        now (:class:`~rtengine.ConfigError`, also for a value that is not JSON: NaN, infinities, objects; and
        ``tools=()`` removes every tool), queued in call order with the other inputs, and when their turn comes
        applied to :attr:`session` and sent as a ``session.update`` holding only what changed; the server answers
        ``session.updated`` (``SessionUpdated``), or a non-fatal ``Error`` naming ``session.update`` if it refuses
        (e.g. a voice change once the assistant spoke): the refused change is then taken back out of
        :attr:`session`. Every later re-join, reconnect and rotation sends the updated session. Raises
        :class:`~rtengine.ConversationNotRunning` once ended. Cancellation: either queued or ``Cancelled`` with
        nothing queued.
        """
        check_update(self._core.session, changes)  # refused at the caller's line, not later on the socket
        await self._inputs.put(UpdateSession(dict(changes)))

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """Send any client event (the escape hatch for what rtengine has no method for), e.g.
        ``await conv.send_event({"type": "conversation.item.delete", "item_id": "item_1"})``.

        The event must be a JSON object with a non-empty string ``type`` (it is copied; a bad one raises
        :class:`~rtengine.ConfigError`, a ``ValueError``). It keeps its ``event_id`` or gets rtengine's, and is
        queued in call order with the other inputs (buffered while a sideband joins). A ``response.create`` is
        sequenced like :meth:`request_response`: while a response is active it waits for that one to end (with its
        ``response`` parameters; waiting ones coalesce, the latest parameters win). An ``input_audio_buffer.*``
        event goes after the audio sent before it. A raw ``session.update`` is not replayed on a re-join or
        reconnect (use :meth:`update_session`; a later ``update_session`` naming a field the raw one set writes it
        even when unchanged for rtengine). The server's answers arrive in ``events`` (as typed events, or
        ``UnknownEvent``; a refusal as a non-fatal ``Error``). Raises :class:`~rtengine.ConversationNotRunning`
        once ended. Cancellation: either queued or ``Cancelled`` with nothing queued.
        """
        await self._inputs.put(client_event(event))

    async def commit_audio(self) -> None:
        """Push-to-talk: commit the input audio sent so far as a user item (``input_audio_buffer.commit``), for a
        session with ``turn_detection=TURN_DETECTION_DISABLED``. It goes out after every audio frame queued before
        it; the server answers ``input_audio_buffer.committed`` and ``conversation.item.added``/``.done`` (no
        response: follow with :meth:`request_response`), or the non-fatal ``Error`` code
        ``input_audio_buffer_commit_empty`` when the buffer holds less than 100 ms. Raises
        :class:`~rtengine.ConversationNotRunning` once ended. Cancellation: as :meth:`send_event`.
        """
        await self._inputs.put(AudioBuffer("commit"))

    async def clear_audio(self) -> None:
        """Push-to-talk: drop the input audio sent so far and not committed (``input_audio_buffer.clear``; the
        server answers ``input_audio_buffer.cleared``). It goes out after every audio frame queued before it.
        Raises :class:`~rtengine.ConversationNotRunning` once ended. Cancellation: as :meth:`send_event`."""
        await self._inputs.put(AudioBuffer("clear"))

    async def clear_output_audio(self) -> None:
        """WebRTC/SIP barge-in: stop the audio the server is playing to the caller (``output_audio_buffer.clear``;
        the server answers ``output_audio_buffer.cleared``, ``OutputAudioCleared``). Cancel the response too
        (:meth:`cancel_response`) to stop the model generating. Raises :class:`~rtengine.ConfigError` on a
        websocket conversation (the API takes it on calls only: a websocket's audio is played by the app) and
        :class:`~rtengine.ConversationNotRunning` once ended. Cancellation: as :meth:`send_event`."""
        if self.transport == "websocket":
            raise ConfigError("clear_output_audio() is for WebRTC and SIP calls; on a websocket, stop your playback")
        await self._inputs.put(ClearOutputAudio())
