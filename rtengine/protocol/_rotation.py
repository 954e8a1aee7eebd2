"""When to rotate a session before its cap, sans-IO.

The API caps a session (60 minutes: the socket is then closed with 1001 "Your session hit the maximum duration of
60 minutes.") and states the cap as the session's ``expires_at`` (unix seconds) in ``session.created`` and
``session.updated``. A conversation that should outlive it moves to a new session first (``rotate_margin``
seconds before ``expires_at``), at a quiet moment: when no response is in flight and no user turn is open (from
``speech_started`` until a response begins: a move then would cut the utterance, the old session's buffered
speech lost with it) and no answer is playing on a call (``output_audio_buffer.started`` until ``stopped`` or
``cleared``: on WebRTC and SIP ``response.done`` comes when the answer is generated, seconds before its audio has
played, and a re-dial hangs up the call that plays it), or once it waited ``RESPONSE_WAIT`` seconds for all of
them to end (never past ``SPARE`` seconds before the cap, which the move itself needs; an utterance cut then is
written again on the new session).

:class:`SessionClock` follows one session's events: its id, its ``expires_at`` (converted, when first seen, to
the caller's clock: ``expires_at - unix_now`` seconds from ``now``), and whether a response is in flight. Its
:meth:`~SessionClock.due` is the time of the rotation on the caller's clock; a session is never rotated before
half of its remaining life as first seen (a margin larger than the session's life would otherwise rotate every new
session at once), nor at all when less than ``MIN_LIFE`` seconds are left (the cap then ends it).
:func:`may_rotate` says whether a due rotation may start now.
"""

from __future__ import annotations

import math
from typing import Final

from ._errors import ConfigError
from ._events import (
    OutputAudioCleared,
    OutputAudioStarted,
    OutputAudioStopped,
    ResponseCancelled,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
)

__all__ = [
    "DEFAULT_ROTATE_MARGIN",
    "MIN_LIFE",
    "RESPONSE_WAIT",
    "SPARE",
    "SessionClock",
    "check_margin",
    "latest_start",
    "may_rotate",
]

#: Seconds before ``expires_at`` at which a session is rotated.
DEFAULT_ROTATE_MARGIN: Final = 30.0
#: At most this long a due rotation waits for the response in flight to end.
RESPONSE_WAIT: Final = 10.0
#: The rotation starts at the latest this many seconds before the cap, response or not.
SPARE: Final = 1.0
#: A session with less life than this left when first seen is not rotated (the cap ends it): too short to be worth
#: a new session, and a loop of instant rotations otherwise.
MIN_LIFE: Final = 2.0


def check_margin(margin: float | None) -> float | None:
    """``margin`` if usable (``None``, or a finite number of seconds > 0); else :class:`~rtengine.ConfigError`."""
    if margin is not None and (
        isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 < margin < math.inf
    ):
        raise ConfigError(f"rotate_margin must be None or a number of seconds > 0, got {margin!r}")
    return margin


class SessionClock:
    """One session as far as rotation cares: its id, when it expires (on the caller's clock), a response in flight."""

    __slots__ = (
        "_margin",
        "audio_playing",
        "due",
        "expires",
        "response_active",
        "response_id",
        "session_id",
        "user_speaking",
        "user_turn",
    )

    def __init__(self, margin: float | None) -> None:
        self._margin = check_margin(margin)
        self.session_id: str | None = None
        #: The cap on the caller's clock (None until ``expires_at`` was stated).
        self.expires: float | None = None
        #: When to rotate, on the caller's clock (None: never — no ``expires_at``, or rotation off).
        self.due: float | None = None
        self.response_active = False
        #: The response streaming now (its ``response.created`` seen, its end not yet), else None.
        self.response_id: str | None = None
        #: The server's VAD heard the user start speaking and not yet stop.
        self.user_speaking = False
        #: The user began a turn (``speech_started``) and no response to it began yet: a move before that
        #: response would lose the end of the turn (its commit, its transcription, the answer).
        self.user_turn = False
        #: A response's audio is playing on the call (WebRTC/SIP: ``output_audio_buffer.started``, not yet
        #: ``stopped``/``cleared``; never on a websocket, whose audio the app plays).
        self.audio_playing = False

    @property
    def quiet(self) -> bool:
        """No response in flight, no user turn open (speaking, or spoken and not yet answered) and no answer
        playing on the call: a move now cuts nothing. A turn never answered (``create_response`` off) delays a
        rotation up to ``RESPONSE_WAIT``."""
        return not self.response_active and not self.user_turn and not self.audio_playing

    def observe(self, event: ServerEvent, now: float, unix_now: float) -> bool:
        """Follow ``event`` (``now`` on the caller's clock, ``unix_now`` the wall clock). True when :attr:`due`
        changed."""
        match event:
            case SessionCreated(session_id=session_id, expires_at=expires_at):
                self.session_id = session_id
                return self._expires(expires_at, now, unix_now)
            case SessionUpdated(session_id=session_id, session=session):
                self.session_id = session_id or self.session_id
                expires_at = session.get("expires_at")
                return self._expires(expires_at if isinstance(expires_at, int) else None, now, unix_now)
            case ResponseCreated(response_id=response_id):
                self.response_active = True
                self.user_turn = False
                self.response_id = response_id
            case ResponseDone() | ResponseCancelled():
                self.response_active = False
                self.response_id = None
            case OutputAudioStarted():
                self.audio_playing = True
            case OutputAudioStopped() | OutputAudioCleared():
                self.audio_playing = False
            case SpeechStarted():
                self.user_speaking = self.user_turn = True
            case SpeechStopped():
                self.user_speaking = False
            case _:
                pass
        return False

    def requested(self) -> None:
        """A ``response.create`` was written: a response is (about to be) in flight until its end is seen."""
        self.response_active = True

    def _expires(self, expires_at: int | None, now: float, unix_now: float) -> bool:
        if expires_at is None or expires_at <= 0 or self.expires is not None:
            return False  # the cap of a session is set once, at its creation
        self.expires = now + (expires_at - unix_now)
        life = self.expires - now
        if self._margin is None or life < MIN_LIFE:
            return False
        self.due = now + max(life - self._margin, life / 2)
        return True


def latest_start(clock: SessionClock, due_since: float) -> float:
    """The latest a rotation due since ``due_since`` starts, response or not: ``RESPONSE_WAIT`` later, and never
    past ``SPARE`` seconds before the cap."""
    latest = due_since + RESPONSE_WAIT
    if clock.expires is not None:
        latest = min(latest, clock.expires - SPARE)
    return latest


def may_rotate(clock: SessionClock, now: float, due_since: float) -> bool:
    """A rotation due since ``due_since`` may start at ``now``: a quiet moment (no response in flight, the user not
    speaking), or waited long enough for one (:func:`latest_start`)."""
    return clock.quiet or now >= latest_start(clock, due_since)
