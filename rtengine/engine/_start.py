"""Starting a conversation: one path, one options value, for ``open_conversation``, ``start_conversation`` and the
manager.

WebRTC: the offer (made here when rtengine is the media peer), then the POST — the :class:`Conversation` is built
while the request is in flight (the call seam's ``on_sent``), so nothing but the request body precedes the POST —
then the conversation's runner, with the sideband job in the background (``Started`` first) or inline. Websocket:
the runner with the connect job inline. A start that fails or is cancelled after the call exists hangs it up.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, NoReturn

import trio

from ..protocol._calls import CallAnswer, check_sdp, multipart_body, raw_sdp_body
from ..protocol._errors import ConfigError, ConversationNotRunning
from ..protocol._history import DEFAULT_HISTORY_ITEMS
from ..protocol._lifecycle import Started
from ..protocol._rotation import DEFAULT_ROTATE_MARGIN, check_margin
from ..protocol._session import SessionConfig
from ..protocol._text import check_text
from ..protocol._urls import realtime_ws_url
from ._accept import accept_call
from ._conversation import Capacities, Conversation, Job
from ._expiring import warn_expiry
from ._follow import Follow
from ._legs import Leg
from ._media import MediaCall, run_media
from ._redial import Redialer
from ._sideband import run_sideband, run_websocket
from ._wsession import run_websocket_sessions

if TYPE_CHECKING:
    from ._media import Media
    from ._seams import Endpoint, PeerLike, TrackLike

__all__ = ["SidebandMode", "StartOptions", "start"]

log = logging.getLogger("rtengine")

SidebandMode = Literal["background", "inline"]


_DEFAULT_CAPACITIES: Final = Capacities()


@dataclass(frozen=True, slots=True)
class StartOptions:
    """How to start a conversation (see :func:`~rtengine.open_conversation` for each field)."""

    offer_sdp: str | None = None
    sideband: SidebandMode = "background"
    raw_sdp: bool = False
    capacities: Capacities = _DEFAULT_CAPACITIES
    media: Media | None = None
    hangup: bool = True
    #: Websocket transport: reconnect after an abnormal drop, replaying the history into a new session.
    reconnect: bool = False
    #: Rotate to a new session this many seconds before the cap (None: never): websockets, and WebRTC calls
    #: rtengine is the media peer of (re-dialed); a browser-held call is warned instead.
    rotate_margin: float | None = DEFAULT_ROTATE_MARGIN
    #: The most history items kept for a replay (older ones are dropped; the replay is then incomplete).
    history_items: int = DEFAULT_HISTORY_ITEMS
    #: A SIP call to accept (``POST …/{id}/accept``) instead of creating a WebRTC call.
    accept_call_id: str | None = None

    def __post_init__(self) -> None:
        check_margin(self.rotate_margin)
        if isinstance(self.history_items, bool) or not isinstance(self.history_items, int) or self.history_items < 1:
            raise ConfigError(f"history_items must be an int >= 1, got {self.history_items!r}")
        if self.reconnect not in (True, False):
            raise ConfigError(f"reconnect must be a bool, got {self.reconnect!r}")
        if self.sideband not in ("background", "inline"):
            raise ConfigError(f"sideband must be 'background' or 'inline', got {self.sideband!r}")
        if self.offer_sdp is not None:
            check_text(self.offer_sdp, "offer_sdp")  # the call body is UTF-8: refused here, not in the POST
        if self.media is not None and self.offer_sdp is not None:
            raise ConfigError("pass either offer_sdp (someone else is the media peer) or media (rtengine is), not both")
        if self.accept_call_id is not None:
            if self.media is not None or self.offer_sdp is not None:
                raise ConfigError("accept_call_id (a SIP call) takes no offer_sdp or media: the caller is the peer")
            if self.sideband != "background":
                raise ConfigError("accept_call_id joins the sideband in the background (sideband='background')")

    @property
    def webrtc(self) -> bool:
        """A call (WebRTC, or SIP to accept) whose sideband the engine joins."""
        return self.offer_sdp is not None or self.media is not None or self.accept_call_id is not None


_DEFAULT: Final = StartOptions()


@dataclass(slots=True)
class CreatedCall:
    """A WebRTC call that exists (``conv.answer_sdp``/``call_id`` set) and has no task yet."""

    conv: Conversation
    peer: PeerLike | None = None
    track: TrackLike | None = None
    #: The runner's jobs and sideband job, prepared while the call's request was in flight (a SIP accept).
    plan: tuple[list[Job], Job] | None = None


async def create_call(endpoint: Endpoint, session: SessionConfig, options: StartOptions) -> CreatedCall:
    """The inline step of a WebRTC conversation: the offer (when rtengine is the media peer), then the POST (for a
    SIP call: the accept, :func:`~rtengine.engine._accept.accept_call`).

    Raises the call-creation errors; a peer made here is closed on any failure. Cancellation: the request is
    abandoned (a call created meanwhile is hung up by the call seam), the peer closed.
    """
    if options.accept_call_id is not None:
        conv, plan = await accept_call(endpoint, session, options, functools.partial(_plan, endpoint, options))
        return CreatedCall(conv, plan=plan)
    started_at = trio.current_time()
    log.info("starting realtime conversation; creating realtime call transport=webrtc")
    headers = endpoint.auth_headers()
    built: list[Conversation] = []

    def build() -> None:
        conv = Conversation(endpoint, session, transport="webrtc", capacities=options.capacities, started_at=started_at)
        built.append(conv)

    media, offer_sdp = options.media, options.offer_sdp
    peer: PeerLike | None = None
    track: TrackLike | None = None
    marks: list[tuple[str, float | None]] = []
    if media is not None:
        spare = media.pool.take() if media.pool is not None else None
        if spare is not None:
            peer, track = spare  # pre-gathered: the offer costs nothing
            marks.append(("offer_from_pool", trio.current_time()))
        else:
            track = media.engine.new_track()
            peer = await media.engine.create_offer(ice_servers=media.ice_servers, source=track)
            marks += [
                ("offer_created", peer.times.get("offer_created")),
                ("ice_gathered", peer.times.get("ice_gathered")),
            ]
        offer_sdp = peer.local_sdp
        marks.append(("call_posted", trio.current_time()))
    assert offer_sdp is not None
    try:
        check_sdp(offer_sdp, what="the SDP offer")
        body = raw_sdp_body(offer_sdp) if options.raw_sdp else multipart_body(offer_sdp, endpoint.session_json(session))
        answer = await endpoint.calls.create(body, headers, on_sent=build)
    except BaseException as exc:
        if built:  # the conversation exists (its telemetry span too) and will never run
            built[0]._timeline.never_ran(failed=not isinstance(exc, trio.Cancelled))
        if peer is not None:
            with trio.CancelScope(shield=True):
                await peer.aclose()
        raise
    finally:
        if media is not None and media.pool is not None:
            media.pool.refill()  # after the POST: gathering the next spare must not compete with it
    if not built:  # a call seam that never reported the body sent
        build()
    conv = built[0]
    _answered(conv, answer, marks)
    conv.hangup = options.hangup
    return CreatedCall(conv, peer, track)


def _answered(conv: Conversation, answer: CallAnswer, marks: list[tuple[str, float | None]]) -> None:
    timeline = conv._timeline
    for phase, when in marks:
        timeline.mark_at(phase, when)
    conv.answer_sdp, conv.call_id = answer.sdp, answer.call_id
    timeline.call_id = answer.call_id
    elapsed = timeline.mark("answer")
    if log.isEnabledFor(logging.INFO):  # the answer path: not even the arguments unless someone listens
        log.info(
            "realtime call created; sdp answer ready transport=webrtc call_id=%s elapsed_ms=%.0f total_elapsed_ms=%.0f",
            answer.call_id,
            elapsed,
            timeline.total_ms(),
        )


async def launch(call: CreatedCall, nursery: trio.Nursery, endpoint: Endpoint, options: StartOptions) -> Conversation:
    """Start a created call's runner in ``nursery``: the media job (which owns the peer from here) and the sideband
    job — in the background (``Started`` first; no checkpoint on this path) or inline (raises when the join fails;
    the call is hung up)."""
    conv = call.conv
    assert conv.call_id is not None
    if options.media is not None and options.rotate_margin is not None:
        return await _launch_redialing(call, nursery, endpoint, options, options.media)
    jobs, sideband = _plan(endpoint, options, conv) if call.plan is None else call.plan
    if options.media is not None:
        assert call.peer is not None
        assert call.track is not None
        assert conv.answer_sdp is not None
        conv.media = MediaCall(call.peer, call.track, options.media.sink, options.capacities.audio_out)
        jobs.append(functools.partial(run_media, conv.media, options.media, conv.answer_sdp))
    return await _spawn(conv, nursery, jobs, sideband, options.sideband == "inline")


def _plan(endpoint: Endpoint, options: StartOptions, conv: Conversation) -> tuple[list[Job], Job]:
    """The jobs of a call's runner but the media's, and its sideband job (``conv.call_id`` known): made while a SIP
    accept is in flight (off the time to accept), else by :func:`launch`."""
    assert conv.call_id is not None
    jobs: list[Job] = []
    if options.media is None and options.rotate_margin is not None:
        # A browser-held or SIP call cannot be moved from here: the app is warned before the cap (the clock only;
        # nothing is replayed).
        conv._core.follow = Follow(options.rotate_margin, 1)
        warn_expiry(conv._core, sip=options.accept_call_id is not None)
    inline = options.sideband == "inline"
    return jobs, functools.partial(run_sideband, endpoint, conv.call_id, endpoint.auth_headers(), inline)


async def _spawn(
    conv: Conversation, nursery: trio.Nursery, jobs: list[Job], sideband: Job, inline: bool
) -> Conversation:
    assert conv.call_id is not None
    try:
        if inline:
            await nursery.start(conv._run, jobs, sideband)
        else:
            jobs.append(sideband)
            nursery.start_soon(conv._run, jobs)
            conv._outlet.put_now(Started(conv.transport, conv.call_id))
            log.info("spawned realtime sideband task; realtime conversation started call_id=%s", conv.call_id)
    except RuntimeError as exc:  # trio: the nursery is closed to new arrivals
        await _refused(conv, exc)
    return conv


async def _launch_redialing(
    call: CreatedCall, nursery: trio.Nursery, endpoint: Endpoint, options: StartOptions, media: Media
) -> Conversation:
    """rtengine is the media peer and rotates the call before the session cap: one job for the call, its media and
    its sideband (:class:`~rtengine.engine._redial.Redialer`)."""
    conv = call.conv
    assert conv.call_id is not None
    assert call.peer is not None
    assert call.track is not None
    assert conv.answer_sdp is not None
    conv.media = MediaCall(call.peer, call.track, media.sink, options.capacities.audio_out)

    def on_call(call_id: str) -> None:
        conv.call_id = call_id

    conv._core.follow = Follow(options.rotate_margin, options.history_items)
    first = Leg(conv.call_id, call.peer, call.track, conv.answer_sdp)
    inline = options.sideband == "inline"
    redialer = Redialer(endpoint, media, conv.media, first, on_call, inline=inline)
    return await _spawn(conv, nursery, [], redialer, inline)


async def _refused(conv: Conversation, exc: RuntimeError) -> NoReturn:
    """The runner could not be spawned: a closed nursery ends the conversation before it started (its call hung up)
    as :class:`~rtengine.ConversationNotRunning`; any other ``RuntimeError`` is raised as it is."""
    if "closed" not in str(exc):
        raise exc
    await conv._abandon()
    raise ConversationNotRunning("the nursery the conversation was to run in is closed") from exc


async def start_websocket(
    endpoint: Endpoint, session: SessionConfig, nursery: trio.Nursery, options: StartOptions
) -> Conversation:
    """A plain websocket conversation: connect and ``session.update`` inline (failures raise), then run."""
    conv = Conversation(endpoint, session, transport="websocket", capacities=options.capacities)
    log.info("starting realtime conversation transport=websocket")
    url = realtime_ws_url(endpoint.realtime_base_url, model=session.model)
    headers = endpoint.auth_headers()
    if options.reconnect or options.rotate_margin is not None:
        conv._core.follow = Follow(options.rotate_margin, options.history_items)
        job: Job = functools.partial(run_websocket_sessions, endpoint, url, headers, options.reconnect)
    else:
        job = functools.partial(run_websocket, endpoint, url, headers)
    try:
        await nursery.start(conv._run, [], job)
    except RuntimeError as exc:  # trio: the nursery is closed to new arrivals
        await _refused(conv, exc)
    return conv


async def start(
    endpoint: Endpoint, session: SessionConfig, nursery: trio.Nursery, options: StartOptions = _DEFAULT
) -> Conversation:
    """Start a conversation whose runner lives in ``nursery``; return once it runs."""
    if not options.webrtc:
        return await start_websocket(endpoint, session, nursery, options)
    call = await create_call(endpoint, session, options)
    return await launch(call, nursery, endpoint, options)
