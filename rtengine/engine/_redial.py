"""Session-cap rotation by re-dialing, for a WebRTC conversation in which rtengine is the media peer.

The API caps a session (60 minutes) and states the cap as ``expires_at``. ``rotate_margin`` seconds before it
(the session clock of ``core.follow``, :class:`~rtengine.protocol._rotation.SessionClock`), the :class:`Redialer` —
the conversation's one job for its call, media and sideband together — moves the conversation to a new call, make
before break:

1. wait for the response in flight to end and its audio to have played out on the call (the server's
   ``output_audio_buffer.stopped``/``cleared``: ``response.done`` comes when the answer is generated, seconds
   before the user has heard it), and for no user turn to be open (bounded:
   :func:`~rtengine.protocol._rotation.latest_start`);
2. a new offer (the prewarm pool's spare when ``Media(pool=…)``, else a fresh one), a new call with the
   conversation's current session (``POST /realtime/calls``), its answer applied and "connected" reached, its
   sideband joined (``session.update`` first), its first audio frame received (bounded) — the old call carries on
   meanwhile, so the app's audio has no hole;
3. the handoff: the old sideband's loop stops (the writes in flight finish; what was taken and not written is
   carried), the history is replayed on the new sideband, then the carried inputs, then the buffered ones — in
   order, exactly once; ``conv.call_id`` and ``conv.media`` move to the new call (the source and the sink too);
4. the old call is hung up (shielded, bounded) and its peer closed; ``SessionRotated(old_call_id, new_call_id,
   gap_ms)`` is delivered. The timeline records ``rotating`` when a rotation begins (after the response wait) and
   ``rotated`` at the switch (then ``rotating_2``/``rotated_2``, …).

A rotation that cannot be made (the offer, the POST, the connection or the join failed) delivers a non-fatal
``Error("rotation_failed")`` and the conversation goes on on the old call, until its cap ends it with
``Closed("session_expired")``. Everything runs in the conversation's work scope: ``close()``, a failure or the
owner's cancellation during a rotation end it as always (one ``Closed``, no ``Error`` after ``close()`` began), and
the job's teardown hangs up every call it made that is not the conversation's current one and closes every peer
(shielded, bounded), so both calls are gone and nothing is left running.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from ..protocol._calls import multipart_body
from ..protocol._errors import CallNotFound, RealtimeError
from ..protocol._lifecycle import Closed, Error, SessionRotated
from ..protocol._replaying import ReplayProgress
from ..protocol._rotation import SessionClock, latest_start, may_rotate
from ._conversation import HANGUP_TIMEOUT
from ._legs import Leg, LegFailed, only_current, run_sideband_leg, wait_connected
from ._rejoin import Carry

if TYPE_CHECKING:
    from ._conversation import Core
    from ._follow import Follow
    from ._media import Media, MediaCall
    from ._seams import Endpoint

__all__ = ["Redialer"]

log = logging.getLogger("rtengine")

#: At most this long a rotation waits for the new call's first audio frame before it lets the old call go (on
#: loopback the first RTP frame comes ≈100 ms after "connected").
_AUDIO_WAIT = 1.0


class Redialer:
    """The job of a re-dialing conversation (see the module docstring). ``on_call`` is told each new call id
    (``conv.call_id``); ``first`` is the call the conversation was created with; the conversation's ``core.follow``
    must be set (its history and session clock)."""

    def __init__(
        self,
        endpoint: Endpoint,
        options: Media,
        media: MediaCall,
        first: Leg,
        on_call: Callable[[str], None],
        *,
        inline: bool,
    ) -> None:
        self._endpoint, self._options, self._media = endpoint, options, media
        self._on_call, self._inline = on_call, inline
        self.current = first
        self._legs: list[Leg] = [first]
        self._open_calls: set[str] = {first.call_id}  # calls not hung up (the current one is the conversation's)
        self._carry = Carry()

    async def __call__(self, core: Core, task_status: trio.TaskStatus[None]) -> None:
        """Run the first call's media and sideband, the app's source and the rotations, until the conversation ends.

        Inline, ``task_status.started()`` comes once the first sideband joined (a failed join raises to the
        starter); in the background the join runs alongside the media, and a join that fails ends the
        conversation like any sideband's (``Error("sideband_join_failed")`` then ``Closed("error")``; a 404:
        ``Closed("call_ended")``). Cancelled (the conversation's end): every peer is closed and every call but the
        current one hung up (shielded, bounded)."""
        assert core.follow is not None
        first = self.current
        first.go.set()
        self._media.track.on_first_audio = lambda when: core.timeline.mark_at("first_audio_sent", when)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._media_leg, first, core, True)
                join = functools.partial(
                    run_sideband_leg, self._endpoint, first, self._carry, core, first=True, inline=self._inline
                )
                if self._inline:  # a failed join raises to the starter (it never returns unstarted)
                    await nursery.start(join)
                else:  # in the background a failed join ends the conversation itself (Error, then Closed)
                    nursery.start_soon(join)
                task_status.started()
                nursery.start_soon(self._feed, first)
                nursery.start_soon(self._rotations, core, core.follow, nursery)
        finally:
            self._carry.discard(core.stats)
            self._media.end()
            with trio.CancelScope(shield=True):
                for leg in self._legs:
                    await leg.peer.aclose()
                for call_id in sorted(self._open_calls - {self.current.call_id}):
                    await self._hang_up(call_id, core)

    # --- media -------------------------------------------------------------------------------------------------

    async def _media_leg(
        self, leg: Leg, core: Core, first: bool, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        peer, timeline, media = leg.peer, core.timeline, self._media

        def deliver(pcm16: bytes) -> None:
            if "first_audio_received" not in timeline:
                timeline.mark("first_audio_received")
            media.deliver(pcm16)

        try:
            with leg.media_scope:
                await peer.apply_answer(leg.answer_sdp)
                if first:
                    timeline.mark("answer_applied")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(peer.receive_audio, only_current(leg, lambda: self.current, deliver))
                    failure = await wait_connected(peer, self._options.connect_timeout)
                    if failure is not None:
                        if not first:
                            raise LegFailed(failure)
                        core.end(Closed("error"), Error(failure, "webrtc_connect_timeout"))
                        return
                    if first:
                        timeline.mark_at("ice_connected", peer.times.get("ice_connected"))
                        timeline.mark_at("dtls_connected", peer.times.get("dtls_connected"))
                        log.info("webrtc connected call_id=%s", leg.call_id)
                    task_status.started()
                    nursery.start_soon(self._watch_channel, leg, core, first)
                    await peer.failed.wait()
                    if self.current is leg:  # the call is over (the provider ends a call whose media is gone)
                        log.info("webrtc connection ended call_id=%s state=%s", leg.call_id, peer.connection_state)
                        detail = f"the WebRTC connection ended ({peer.connection_state})"
                        core.end(Closed("call_ended", None, detail), None)
                    nursery.cancel_scope.cancel()
        finally:
            await peer.aclose()

    async def _feed(self, first: Leg) -> None:
        """The app's source, for the whole conversation (not one leg's): it feeds ``conv.media.track``, which a
        rotation moves to the new call's peer."""
        if self._options.source is not None:
            await first.peer.connected.wait()
            await self._media.feed(self._options.source)

    async def _watch_channel(self, leg: Leg, core: Core, first: bool) -> None:
        """Mark the data channel open; unless the app keeps its messages, read them off and count them."""
        await leg.peer.channel_open.wait()
        if first:
            core.timeline.mark_at("data_channel_open", leg.peer.times.get("data_channel_open"))
        if not self._options.data_channel:
            async for _ in leg.peer.messages:
                self._media.data_messages += 1

    # --- rotation ----------------------------------------------------------------------------------------------

    async def _rotations(self, core: Core, follow: Follow, nursery: trio.Nursery) -> None:
        while True:
            clock = await _due(follow)
            due_since = trio.current_time()
            while not may_rotate(clock, trio.current_time(), due_since):  # a quiet moment, or waited long enough
                changed = follow.changed
                with trio.move_on_at(latest_start(clock, due_since)):
                    await changed.wait()
            if not await self._rotate(core, nursery):
                while follow.clock is clock:  # failed: this session runs to its cap (a new one would be rotated)
                    await follow.changed.wait()

    async def _rotate(self, core: Core, nursery: trio.Nursery) -> bool:
        """One rotation (see the module docstring): True once done, False when it failed (and was reported)."""
        old, stats, timeline, follow = self.current, core.stats, core.timeline, core.follow
        assert follow is not None
        old_session = follow.clock.session_id
        log.info("rotating realtime call before the session cap call_id=%s", old.call_id)
        began = trio.current_time()
        attempt = stats.rotations + stats.rotations_failed + 1
        timeline.mark("rotating" if attempt == 1 else f"rotating_{attempt}")
        try:
            new = await self._dial(core)
            await nursery.start(self._media_leg, new, core, False)
            await nursery.start(
                functools.partial(run_sideband_leg, self._endpoint, new, self._carry, core, first=False, inline=False)
            )
        except (RealtimeError, LegFailed) as exc:
            stats.rotations_failed += 1
            log.warning("realtime call rotation failed call_id=%s: %s", old.call_id, exc)
            if self._legs[-1] is not old:  # the new call was made: let it go
                await self._retire(self._legs[-1], core)
            core.outlet.put_now(Error(f"the session could not be rotated: {exc}", "rotation_failed", fatal=False))
            return False
        with trio.move_on_after(_AUDIO_WAIT):
            await new.heard.wait()  # make before break: the app hears the new call at once
        if not new.heard.is_set():
            log.warning("no audio from the new call within %g s; switching anyway call_id=%s", _AUDIO_WAIT, new.call_id)
        stopped = trio.current_time()
        old.hand_off()
        await old.handed_off.wait()
        # First on the new sideband (after its session.update): the history, then the owed response.create (if
        # any) and what the old loop had taken and not written; the buffered inputs follow.
        replay = follow.history.replay()
        new.replay = ReplayProgress(replay.items, replay.complete)
        control = core.brain.rejoined(tuple(self._carry.control))  # the response reconciled, as on a re-join
        self._carry.control.clear()
        self._carry.control.extend(control)
        if not new.replay.complete:
            log.warning("realtime call rotated with an incomplete history (audio without a transcript, or too long)")
        self.current = new
        follow.new_session()  # the new call's session.updated states its cap
        self._media.swap(new.peer, new.track)
        self._on_call(new.call_id)
        timeline.call_id = new.call_id
        new.go.set()
        await new.running.wait()  # the replay is in: the inputs go out again
        gap_ms = (trio.current_time() - stopped) * 1000
        stats.rotations += 1
        phase = "rotated" if stats.rotations == 1 else f"rotated_{stats.rotations}"
        timeline.mark(phase)
        log.info(
            "realtime call rotated old_call_id=%s new_call_id=%s gap_ms=%.0f total_ms=%.0f",
            old.call_id,
            new.call_id,
            gap_ms,
            (trio.current_time() - began) * 1000,
        )
        await self._retire(old, core)
        progress = new.replay
        restored = progress.complete and not (progress.refused or progress.unconfirmed or progress.owed)
        stats.rotations_incomplete += not restored
        await core.outlet.forward(
            SessionRotated(old.call_id, new.call_id, gap_ms, old_session, follow.clock.session_id, restored)
        )
        return True

    async def _dial(self, core: Core) -> Leg:
        """A new offer (the pool's spare when there is one) and a new call with the conversation's session."""
        options, endpoint = self._options, self._endpoint
        spare = options.pool.take() if options.pool is not None else None
        if spare is not None:
            peer, track = spare
        else:
            track = options.engine.new_track()
            peer = await options.engine.create_offer(ice_servers=options.ice_servers, source=track)
        try:
            body = multipart_body(peer.local_sdp, endpoint.session_json(core.session))
            answer = await endpoint.calls.create(body, endpoint.auth_headers())
        except BaseException:
            await peer.aclose()  # shielded and bounded by the peer adapter
            raise
        finally:
            if options.pool is not None:
                options.pool.refill()
        leg = Leg(answer.call_id, peer, track, answer.sdp)
        self._legs.append(leg)
        self._open_calls.add(leg.call_id)
        return leg

    async def _retire(self, leg: Leg, core: Core) -> None:
        """Let a leg go: its input loop (if it still runs), its media, its call."""
        leg.hand_off()
        leg.media_scope.cancel()
        await leg.peer.aclose()
        self._legs.remove(leg)
        await self._hang_up(leg.call_id, core)

    async def _hang_up(self, call_id: str, core: Core) -> None:
        """Hang up a call this job made or left: shielded, bounded, never raised."""
        self._open_calls.discard(call_id)
        endpoint = self._endpoint
        with trio.CancelScope(shield=True), trio.move_on_after(HANGUP_TIMEOUT) as scope:
            try:
                await endpoint.calls.hangup(call_id, endpoint.auth_headers())
            except CallNotFound:
                pass  # over either way
            except RealtimeError as exc:
                core.stats.hangup_failures += 1
                log.warning("hanging up a rotated realtime call failed call_id=%s: %s", call_id, exc)
                return
            log.info("rotated realtime call hung up call_id=%s", call_id)
        if scope.cancelled_caught:
            core.stats.hangup_failures += 1
            log.warning("hanging up a rotated realtime call timed out call_id=%s", call_id)


async def _due(follow: Follow) -> SessionClock:
    """Sleep until the current session is due for rotation (its clock may be replaced meanwhile); its clock."""
    while True:
        clock, changed = follow.clock, follow.changed
        due = math.inf if clock.due is None else clock.due
        if trio.current_time() >= due:
            return clock
        with trio.move_on_at(due):
            await changed.wait()
