"""On a call, ``output_audio_buffer.stopped`` comes when the answer has played over RTP, not when it was generated.

The real API's WebRTC sideband sends ``response.done`` → ``rate_limits.updated`` → ``output_audio_buffer.stopped``
(pydantic-ai's recording of a WebRTC sideband audio turn, ``tests/server/recordings/``); ``response.done`` comes
when the answer is generated, ``stopped`` once its audio has played out — seconds later for a long answer. A client
that waits for ``stopped`` before hanging up (a re-dial for rotation) must not cut what the user is hearing.
"""

from typing import Any

import pytest
import trio
from engine_helpers import drain, until
from helpers import call_id_of, create_call, loads, sideband
from sip_helpers import placed_call

import rtengine
from rtengine.adapters._peer import Peer, PeerService
from rtengine.adapters._ws import open_socket
from rtengine.events import OutputAudioStopped, ResponseDone
from rtengine.protocol._audio import rms
from rtengine.protocol._payloads import encode
from rtengine.server import ServerOptions, SipScript, open_local_server

#: A one-second answer: 50 frames of 20 ms.
AUDIO_MS = 1000
FRAMES = AUDIO_MS // 20


class Ear:
    """What a caller hears: the loud frames received so far (the answer's tone; the rest is silence)."""

    def __init__(self) -> None:
        self.loud = 0

    def hear(self, pcm: bytes) -> None:
        if rms(pcm) > 0.02:
            self.loud += 1


async def read_until(sock: Any, event_type: str, ear: Ear, heard: dict[str, int]) -> list[dict[str, Any]]:
    """Events up to ``event_type``; ``heard`` gets, for each event type, the loud frames heard when it came."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != event_type:
        events.append(loads(await sock.receive()))
        heard.setdefault(events[-1]["type"], ear.loud)
    return events


async def connected_call(peers: PeerService, server: Any) -> tuple[Peer, str]:
    caller = await peers.create_offer()
    created = await create_call(server, caller.local_sdp)
    await caller.apply_answer(created.text)
    await caller.connected.wait()
    return caller, call_id_of(created)


@pytest.mark.parametrize("cut", [False, True], ids=["played", "cut_after_done"])
async def test_stopped_comes_when_the_answer_has_played_and_a_cut_answer_is_cleared_instead(
    peers: PeerService, cut: bool
) -> None:
    """Played out, ``stopped`` comes once the caller has heard the answer, not when it was generated. Cut by
    ``output_audio_buffer.clear`` while it plays (after its ``response.done``), it is ``cleared``, never ``stopped``."""
    ear, heard = Ear(), dict[str, int]()
    after: list[dict[str, Any]] = []
    options = ServerOptions(delta_interval=0.0, greeting_ms=0, audio_ms=AUDIO_MS)
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(20):
            caller, call_id = await connected_call(peers, server)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(caller.receive_audio, ear.hear)
                async with open_socket(sideband(server, call_id), {}) as sock:
                    await sock.send(encode({"type": "session.update", "session": {"type": "realtime"}}))
                    await read_until(sock, "session.updated", ear, heard)
                    await sock.send(encode({"type": "response.create"}))
                    if cut:
                        answer = await read_until(sock, "rate_limits.updated", ear, heard)
                        await sock.send(encode({"type": "output_audio_buffer.clear"}))
                        events = await read_until(sock, "output_audio_buffer.cleared", ear, heard)
                        with trio.move_on_after(AUDIO_MS / 1000 + 0.5):  # past when the whole answer would have played
                            after.append(loads(await sock.receive()))
                    else:
                        answer = events = await read_until(sock, "output_audio_buffer.stopped", ear, heard)
                    loud_at_end = ear.loud
                nursery.cancel_scope.cancel()
            await caller.aclose()
    assert events[-1]["response_id"] == answer[0]["response"]["id"]
    if cut:
        assert [e["type"] for e in events] == ["output_audio_buffer.cleared"]
        assert after == []  # no stopped for an answer that was cut
        assert loud_at_end < FRAMES * 3 // 4  # the cut took: the rest was never played
    else:
        kinds = [e["type"] for e in events]
        assert kinds[kinds.index("response.done") :] == [
            "response.done",
            "rate_limits.updated",
            "output_audio_buffer.stopped",
        ]
        assert heard["response.done"] < FRAMES // 2  # generated at once: most of it still to play
        assert heard["output_audio_buffer.stopped"] >= FRAMES * 3 // 4  # stopped: the caller has heard it


async def test_on_a_sip_call_the_answer_plays_on_the_servers_clock(peers: PeerService) -> None:
    """A SIP call's phone network is not simulated (no RTP drains the call's audio): ``stopped`` comes once the
    answer would have played, on the server's clock — not at once, and not never."""
    quiet = SipScript(calls=0, speech_ms=0, dtmf="", ring_seconds=5.0)
    async with placed_call(peers, quiet, audio_ms=AUDIO_MS, greeting_ms=0) as call:
        client, call_id = call.client, call.call_id
        session = rtengine.SessionConfig(instructions="Answer the phone.", turn_detection="disabled")
        async with rtengine.open_conversation(client, session, accept_call_id=call_id) as conv:
            await conv.request_response()
            done = (await until(conv, ResponseDone))[-1]
            done_at = trio.current_time()
            stopped = (await until(conv, OutputAudioStopped))[-1]
            waited = trio.current_time() - done_at
            await conv.close()
        await drain(conv)
    assert isinstance(done, ResponseDone)
    assert isinstance(stopped, OutputAudioStopped)
    assert stopped.response_id == done.response_id
    assert waited >= AUDIO_MS / 1000 * 0.5  # the answer's audio had yet to play when it was generated
