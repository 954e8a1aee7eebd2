"""The conversation commands against the local server: ``update_session`` mid-call (and after a websocket
reconnect), ``send_event`` (validation, ids, sequencing), push-to-talk (``commit_audio``/``clear_audio`` with
server VAD off) and WebRTC barge-in (``clear_output_audio``)."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
import trio
from engine_helpers import client_for, drain, ends, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import (
    Closed,
    ConnectionDropped,
    Error,
    ItemAdded,
    OutputAudioCleared,
    OutputAudioStopped,
    ResponseCreated,
    ResponseDone,
    SessionRestored,
    SessionUpdated,
    SidebandLost,
    SidebandRestored,
    Started,
    UnknownEvent,
)
from rtengine.protocol._audio import tone
from rtengine.server import Faults

SESSION = rtengine.SessionConfig(instructions="first")
PTT = rtengine.SessionConfig(instructions="ptt", turn_detection=rtengine.TURN_DETECTION_DISABLED)


def _session_updates(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["session"] for f in frames if f["type"] == "session.update"]


async def test_update_session_mid_call_sends_only_the_change_and_the_server_applies_it(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                await conv.update_session(instructions="second", voice="marin")
                updated = (await until(conv, SessionUpdated))[-1]
                assert conv.session.instructions == "second"
                assert conv.session.voice == "marin"
    assert isinstance(updated, SessionUpdated)
    assert updated.instructions == "second"
    assert updated.session["audio"]["output"]["voice"] == "marin"
    frames = server.record.directs()[-1].frames_in
    assert _session_updates(frames)[1] == {
        "type": "realtime",
        "instructions": "second",
        "audio": {"output": {"voice": "marin"}},
    }


async def test_update_session_refuses_bad_changes_at_the_callers_line(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                for changes in ({"model": "other"}, {"instructions": None}, {"colour": "red"}, {"tool_choice": "x"}):
                    with pytest.raises(rtengine.ConfigError):
                        await conv.update_session(**changes)
                await conv.close()
    assert len(_session_updates(server.record.directs()[-1].frames_in)) == 1  # nothing refused reached the wire


async def test_update_session_survives_a_websocket_reconnect(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, reconnect=True) as conv:
                await until(conv, SessionUpdated)
                await conv.update_session(instructions="updated")
                await until(conv, SessionUpdated)
                sent = len(server.record.directs()[0].frames_out)
                server.set_faults(Faults(close_after_events=sent + 1, close_mode="abrupt"))
                await conv.send_text("drop now")
                await until(conv, ConnectionDropped)
                server.set_faults(Faults())
                await until(conv, SessionRestored)
                await conv.close()
                rest = await drain(conv)
    assert ends(rest) == [Closed("requested")]
    first, second = server.record.directs()[:2]
    assert first.frames_in[0]["session"]["instructions"] == "first"
    assert second.frames_in[0]["type"] == "session.update"
    assert second.frames_in[0]["session"]["instructions"] == "updated"  # the updated session, not the configured one


async def test_send_event_validates_before_queueing(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                bad: list[Any] = [
                    ["response.create"],
                    {"no": "type"},
                    {"type": ""},
                    {"type": 7},
                    {"type": "x", "event_id": 3},
                    {"type": "x", "data": {1, 2}},
                    {"type": "x", "value": math.nan},
                ]
                for event in bad:
                    with pytest.raises(ValueError, match="send_event"):
                        await conv.send_event(event)
                await conv.close()
    assert all(f["type"] == "session.update" for f in server.record.directs()[-1].frames_in)


async def test_send_event_keeps_its_event_id_or_gets_one_and_reaches_the_server(peers: PeerService) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "raw"}]}
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.send_event({"type": "conversation.item.create", "item": item, "event_id": "mine_1"})
                await conv.send_event({"type": "conversation.item.create", "item": item})
                await conv.send_event({"type": "no.such_event"})
                seen = await until(conv, Error)
    added = [e for e in seen if isinstance(e, ItemAdded)]
    assert len(added) == 2
    error = seen[-1]
    assert isinstance(error, Error)
    assert not error.fatal
    assert error.request_type == "no.such_event"  # rtengine's id: the refusal names the event it answers
    creates = [f for f in server.record.directs()[-1].frames_in if f["type"] == "conversation.item.create"]
    assert creates[0]["event_id"] == "mine_1"
    assert str(creates[1]["event_id"]).startswith("rte_")


async def test_a_raw_response_create_waits_for_the_active_response(peers: PeerService) -> None:
    async with serving(peers, delta_interval=0.01) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await conv.send_text("hello")
                await conv.send_event({"type": "response.create"})
                await conv.send_event({"type": "response.create", "response": {"instructions": "second answer"}})
                seen = await until(conv, ResponseDone)
                seen += await until(conv, ResponseDone)
    assert not [e for e in seen if isinstance(e, Error)]  # never two in flight: no active-response refusal
    assert len([e for e in seen if isinstance(e, ResponseCreated)]) == 2
    assert conv.stats.responses_deferred == 1
    creates = [f for f in server.record.directs()[-1].frames_in if f["type"] == "response.create"]
    assert creates[1]["response"] == {"instructions": "second answer"}  # the deferred one kept its parameters


async def test_push_to_talk_appends_commits_and_answers_in_order(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, PTT) as conv:
                for _ in range(10):  # 200 ms of speech-like tone, queued before the commit
                    assert conv.send_audio(tone(440, 20))
                await conv.commit_audio()
                await conv.request_response()
                seen = await until(conv, ResponseDone)
    types_in = server.record.directs()[-1].types_in()
    commit = types_in.index("input_audio_buffer.commit")
    appends = [f for f in server.record.directs()[-1].frames_in if f["type"] == "input_audio_buffer.append"]
    assert sum(len(base64.b64decode(f["audio"])) for f in appends) == 10 * len(tone(440, 20))  # all 10 frames
    assert max(i for i, t in enumerate(types_in) if t == "input_audio_buffer.append") < commit
    assert commit < types_in.index("response.create")
    committed = [e for e in seen if isinstance(e, UnknownEvent) and e.type == "input_audio_buffer.committed"]
    assert len(committed) == 1
    user = [e for e in seen if isinstance(e, ItemAdded) and e.item.get("role") == "user"]
    assert user
    assert user[0].item_id == committed[0].raw["item_id"]
    assert not [e for e in seen if isinstance(e, Error)]
    assert isinstance(seen[0], Started)


async def test_clear_audio_empties_the_buffer_so_a_commit_is_refused(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, PTT) as conv:
                for _ in range(10):
                    conv.send_audio(tone(440, 20))
                await conv.clear_audio()
                await conv.commit_audio()
                seen = await until(conv, Error)
                await conv.send_text("still here")  # a refused commit is not fatal
                seen += await until(conv, ItemAdded)
    assert any(isinstance(e, UnknownEvent) and e.type == "input_audio_buffer.cleared" for e in seen)
    error = next(e for e in seen if isinstance(e, Error))
    assert (error.code, error.fatal, error.request_type) == (
        "input_audio_buffer_commit_empty",
        False,
        "input_audio_buffer.commit",
    )
    types_in = server.record.directs()[-1].types_in()
    assert types_in.index("input_audio_buffer.clear") > max(
        i for i, t in enumerate(types_in) if t == "input_audio_buffer.append"
    )


async def test_clear_output_audio_is_for_calls_only(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                with pytest.raises(rtengine.ConfigError, match="WebRTC"):
                    await conv.clear_output_audio()
                await conv.close()
    assert "output_audio_buffer.clear" not in server.record.directs()[-1].types_in()


async def test_clear_output_audio_on_a_call_cuts_the_playback(peers: PeerService, offer_sdp: str) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                await conv.send_text("talk to me")
                await conv.request_response()
                spoken = await until(conv, OutputAudioStopped)
                await conv.clear_output_audio()
                seen = await until(conv, OutputAudioCleared)
    assert isinstance(seen[-1], OutputAudioCleared)
    assert seen[-1].response_id == spoken[-1].response_id  # type: ignore[union-attr]
    assert "output_audio_buffer.clear" in server.record.sidebands()[-1].types_in()


async def test_update_session_survives_a_sideband_rejoin(peers: PeerService, offer_sdp: str) -> None:
    """Updated (and confirmed) before the drop, the call keeps the updated session; an update queued during the
    gap goes out on the re-joined sideband."""
    async with serving(peers) as server, client_for(server, backoff_base=0.2) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION, offer_sdp=offer_sdp) as conv:
                await until(conv, SessionUpdated)
                await conv.update_session(instructions="updated")
                await until(conv, SessionUpdated)
                server.set_faults(Faults(drop_sideband="reset", refuse_sideband_joins=1))
                await conv.send_text("drop now")
                await until(conv, SidebandLost)
                await conv.update_session(voice="cedar")  # during the gap
                await until(conv, SidebandRestored)
                seen = await until(conv, SessionUpdated)
                while not (isinstance(seen[-1], SessionUpdated) and "cedar" in str(seen[-1].session)):
                    seen += await until(conv, SessionUpdated)
    last = seen[-1]
    assert isinstance(last, SessionUpdated)
    assert last.instructions == "updated"
    assert last.session["audio"]["output"]["voice"] == "cedar"
    assert (conv.session.instructions, conv.session.voice) == ("updated", "cedar")
    rejoined = [s for s in server.record.sidebands() if s.frames_in][-1]
    assert rejoined.types_in()[0] == "session.update"
    assert {"type": "realtime", "audio": {"output": {"voice": "cedar"}}} in _session_updates(rejoined.frames_in)


async def test_raw_events_queued_before_the_sideband_joins_go_out_after_it_in_order(
    peers: PeerService, offer_sdp: str
) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "early"}]}
    async with serving(peers, faults=Faults(sideband_accept_delay=0.1)) as server, client_for(server) as client:
        with trio.fail_after(15):
            async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv:
                await conv.send_event({"type": "conversation.item.create", "item": item})
                await conv.update_session(instructions="joined late")
                await conv.send_event({"type": "response.create"})
                seen = await until(conv, ResponseDone)
    assert not [e for e in seen if isinstance(e, Error)]
    types_in = server.record.sidebands()[-1].types_in()
    assert types_in == ["session.update", "conversation.item.create", "session.update", "response.create"]
    assert conv.session.instructions == "joined late"
