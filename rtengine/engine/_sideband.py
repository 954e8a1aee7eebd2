"""The socket jobs: a plain websocket conversation, a call's sideband (join with retries), and the input loop.

Each runs in the conversation's work scope, so the end (``close()``, a failure, the owner's cancellation) cancels
it unconditionally: after that no connection can be opened and nothing can be written but the close, which the
socket adapter runs by itself (shielded, bounded) when the ``open`` block is left. The decisions — what a server
event means, what a command sends — come from :class:`~rtengine.protocol.Brain`; this module only does the I/O.

The loop: the reader (this task) and two pumps, control (texts, tool outputs, response requests, in call order)
and audio. Writes are serialized by the socket. A write that fails ends the conversation with
``Error("connection_lost")``; so does a read that ends without a close frame.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from ..protocol._backoff import retry_delays
from ..protocol._brain import socket_end
from ..protocol._errors import ConnectionLost, TransportError
from ..protocol._lifecycle import Closed, Error, SocketEnd, Started
from ..protocol._parse import parse_server_event
from ..protocol._payloads import encode, input_audio_append, session_update
from ..protocol._urls import sideband_url

if TYPE_CHECKING:
    from ._conversation import Core
    from ._seams import Endpoint, Socket

__all__ = ["run_loop", "run_sideband", "run_websocket"]

log = logging.getLogger("rtengine")


async def run_websocket(
    endpoint: Endpoint, url: str, headers: Mapping[str, str], core: Core, task_status: trio.TaskStatus[None]
) -> None:
    """A plain websocket conversation: connect and send ``session.update`` (inline: a failure raises to the
    starter), deliver ``Started``, then run the loop."""
    async with endpoint.sockets.open(url, headers) as sock:
        elapsed = core.timeline.mark("connected")
        await sock.send(encode(core.brain.stamp(session_update(core.session))))
        core.timeline.mark("session_update_sent")
        log.info(
            "connected realtime websocket elapsed_ms=%.0f total_elapsed_ms=%.0f", elapsed, core.timeline.total_ms()
        )
        core.outlet.put_now(Started("websocket"))
        log.info("realtime conversation started transport=websocket")
        task_status.started()
        await run_loop(core, sock)


async def run_sideband(
    endpoint: Endpoint,
    call_id: str,
    headers: Mapping[str, str],
    inline: bool,
    core: Core,
    task_status: trio.TaskStatus[None],
) -> None:
    """Join the call's sideband, then run the loop on it.

    A join attempt is the handshake plus ``session.update``; a failed attempt is retried with backoff
    (realtime-protocol §3.4). When the attempts run out: inline, the error raises to the starter; in the background,
    one ``Error("sideband_join_failed")`` then ``Closed("error")`` — unless the conversation already ended, which
    then cancelled this job before it could get here.
    """
    url = sideband_url(endpoint.realtime_base_url, call_id)  # off the answer path
    delays = retry_delays(endpoint.sideband_retries, endpoint.backoff_base, endpoint.rand)
    update = session_update(core.session)  # built once; each attempt stamps a fresh event_id on it
    log.info("connecting realtime sideband websocket call_id=%s", call_id)
    for attempt in range(len(delays) + 1):
        core.stats.join_attempts += 1
        joined = False
        try:
            async with endpoint.sockets.open(url, headers) as sock:
                core.timeline.mark("sideband_joined")
                await sock.send(encode(core.brain.stamp(update)))
                joined = True
                core.timeline.mark("session_update_sent")
                log.info(
                    "connected realtime sideband websocket call_id=%s total_elapsed_ms=%.0f",
                    call_id,
                    core.timeline.total_ms(),
                )
                if inline:
                    core.outlet.put_now(Started("webrtc", call_id))
                task_status.started()
                await run_loop(core, sock)
                return
        except TransportError as exc:
            if joined:
                raise
            if attempt == len(delays):
                if inline:
                    raise
                log.warning("failed to connect realtime sideband call_id=%s: %s", call_id, exc)
                core.end(Closed("error"), Error(f"failed to connect realtime sideband: {exc}", "sideband_join_failed"))
                return
            log.warning(
                "realtime sideband join attempt %d failed call_id=%s; retrying in %.0f ms: %s",
                attempt + 1,
                call_id,
                delays[attempt] * 1000,
                exc,
            )
        await trio.sleep(delays[attempt])


async def run_loop(core: Core, sock: Socket) -> None:
    """Pumps and reader until the conversation ends (the work scope is cancelled) or the socket does."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pump_control, core, sock)
        nursery.start_soon(_pump_audio, core, sock)
        await _read(core, sock)
        nursery.cancel_scope.cancel()


async def _write(core: Core, sock: Socket, payload: dict[str, object]) -> bool:
    """Write one payload; on failure end the conversation (``connection_lost``) and return False."""
    try:
        await sock.send(encode(core.brain.stamp(payload)))
    except ConnectionLost as exc:
        core.stats.inputs_lost += 1
        core.end(Closed("error"), Error(f"realtime connection lost: {exc}", "connection_lost"))
        return False
    core.brain.wrote(payload)
    return True


async def _pump_control(core: Core, sock: Socket) -> None:
    inputs, brain = core.inputs, core.brain
    while True:
        command = await inputs.next_command()
        payloads = brain.command(command)
        for index, payload in enumerate(payloads):
            try:
                if not await _write(core, sock, payload):
                    return
            except trio.Cancelled:
                core.stats.inputs_lost += len(payloads) - index  # taken from the buffer, never written
                raise


async def _pump_audio(core: Core, sock: Socket) -> None:
    inputs, stats, brain = core.inputs, core.stats, core.brain
    while True:
        pcm = await inputs.next_audio()
        try:
            await sock.send(encode(brain.stamp(input_audio_append(pcm))))
        except trio.Cancelled:
            stats.inputs_lost += 1  # taken from the buffer, never written
            raise
        except ConnectionLost as exc:
            stats.inputs_lost += 1
            core.end(Closed("error"), Error(f"realtime connection lost: {exc}", "connection_lost"))
            return
        stats.audio_frames_sent += 1


async def _read(core: Core, sock: Socket) -> None:
    brain, outlet, stats, timeline = core.brain, core.outlet, core.stats, core.timeline
    while True:
        message = await sock.receive()
        if isinstance(message, SocketEnd):
            error, closed = socket_end(message)
            core.end(closed, error)
            return
        stats.frames_received += 1
        reaction = brain.server_event(parse_server_event(message, brain.output_format))
        for payload in reaction.send:
            if not await _write(core, sock, payload):
                return
        if reaction.mark is not None and reaction.mark not in timeline:
            elapsed = timeline.mark(reaction.mark)
            phase = reaction.mark.replace("_", " ")
            log.info("realtime %s elapsed_ms=%.0f total_elapsed_ms=%.0f", phase, elapsed, timeline.total_ms())
        if reaction.end is not None:
            error, closed = reaction.end
            core.end(closed, error)
            return
        if reaction.deliver is not None:
            await outlet.forward(reaction.deliver)
