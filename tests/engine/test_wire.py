"""What the engine puts on the wire and reads from it (issue #10), over a websocket fake on the autojump clock:
G.711 output audio read in the session's format, an id on every client event, server errors traced to the request
that caused them, and an unsolicited active-response error that never stalls ``request_response``."""

from __future__ import annotations

import base64
import json
from typing import Any

import trio
from engine_fakes import FakeEndpoint, FakeSocket, FakeSockets

import rtengine
from rtengine.events import AudioOut, Error, ResponseDone, SessionUpdated
from rtengine.protocol._g711 import alaw_to_pcm16

G711 = rtengine.SessionConfig(
    output_format=rtengine.AudioFormat("audio/pcma", None),
    turn_detection=rtengine.TurnDetection(interrupt_response=True),
)


def _sent(sock: FakeSocket) -> list[dict[str, Any]]:
    return [json.loads(text) for text in sock.log]


def _push(sock: FakeSocket, event: dict[str, Any]) -> None:
    sock.push(json.dumps(event))


async def _next(conv: rtengine.Conversation, kind: type) -> Any:
    async for event in conv.events:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__}")


def _updated(output_format: dict[str, Any] | None) -> dict[str, Any]:
    session: dict[str, Any] = {"id": "sess_1", "type": "realtime"}
    if output_format is not None:
        session["audio"] = {"output": {"format": output_format}}
    return {"type": "session.updated", "session": session}


async def test_g711_output_is_decoded_and_barge_in_truncates_by_its_clock(autojump_clock: trio.abc.Clock) -> None:
    """With ``audio/pcma`` configured (and ``session.updated`` not restating it), 1.2 s of A-law deltas arrive:
    ``AudioOut`` says so and ``pcm()`` is PCM16; the barge-in truncate is at 1200 ms (it was 200: PCM16 assumed)."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    alaw = bytes([0xD5, 0xAA, 0x2A]) * 1600  # 4800 samples: 600 ms at 8 kHz
    async with rtengine.open_conversation(endpoint, G711) as conv:  # type: ignore[arg-type]
        _push(sock, _updated(None))
        await _next(conv, SessionUpdated)
        for _ in range(2):
            _push(
                sock,
                {"type": "response.output_audio.delta", "item_id": "item_a", "delta": base64.b64encode(alaw).decode()},
            )
            audio = await _next(conv, AudioOut)
            assert (audio.format, audio.sample_rate, audio.duration_ms) == ("audio/pcma", 8000, 600)
            assert audio.pcm() == alaw_to_pcm16(alaw)
            assert audio.pcm()[:6] == b"\x08\x00\x00\x7e\x00\x82"  # +8, +32256, -32256
        _push(sock, {"type": "input_audio_buffer.speech_started", "item_id": "item_user"})
        await trio.sleep(1)
    truncates = [f for f in _sent(sock) if f["type"] == "conversation.item.truncate"]
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncates] == [("item_a", 1200)]


async def test_the_format_the_server_confirms_wins(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with rtengine.open_conversation(endpoint, G711) as conv:  # type: ignore[arg-type]
        _push(sock, _updated({"type": "audio/pcmu"}))
        await _next(conv, SessionUpdated)
        _push(
            sock,
            {"type": "response.output_audio.delta", "item_id": "i", "delta": base64.b64encode(b"\xff\x80").decode()},
        )
        audio = await _next(conv, AudioOut)
    assert audio.format == "audio/pcmu"
    assert audio.pcm() == b"\x00\x00\x7c\x7d"  # μ-law 0xFF is 0, 0x80 is +32124


async def test_every_client_event_has_its_own_id_and_errors_name_their_request(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with rtengine.open_conversation(endpoint, rtengine.SessionConfig()) as conv:  # type: ignore[arg-type]
        await conv.send_text("hi")
        assert conv.send_audio(b"\x00\x00" * 240)
        await conv.cancel_response()
        await trio.sleep(1)
        sent = _sent(sock)
        cancel = next(f for f in sent if f["type"] == "response.cancel")
        _push(
            sock,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "response_cancel_not_active",
                    "message": "Cancellation failed: no active response found",
                    "event_id": cancel["event_id"],
                },
            },
        )
        error = await _next(conv, Error)
    ids = [f["event_id"] for f in sent]
    assert sorted(f["type"] for f in sent) == [
        "conversation.item.create",
        "input_audio_buffer.append",
        "response.cancel",
        "session.update",
    ]
    assert len(set(ids)) == len(ids)
    assert len({i.rsplit("_", 1)[0] for i in ids}) == 1  # one prefix per conversation, then a counter
    assert (error.request_type, error.request_event_id, error.fatal) == ("response.cancel", cancel["event_id"], False)


async def test_an_unsolicited_active_response_error_does_not_stall_later_requests(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Regression: the error names no ``response.create`` of ours (another client's was refused); it used to park
    the sequencer, so this ``request_response()`` was deferred for ever."""
    sock = FakeSocket()
    endpoint = FakeEndpoint(sockets=FakeSockets(make=lambda _n: sock))
    async with rtengine.open_conversation(endpoint, rtengine.SessionConfig()) as conv:  # type: ignore[arg-type]
        _push(
            sock,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "conversation_already_has_active_response",
                    "message": "Conversation already has an active response in progress: resp_x.",
                    "event_id": None,
                },
            },
        )
        error = await _next(conv, Error)
        await conv.request_response()
        await trio.sleep(1)
        creates = [f for f in _sent(sock) if f["type"] == "response.create"]
        _push(sock, {"type": "response.created", "response": {"id": "resp_1"}})
        _push(sock, {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}})
        await _next(conv, ResponseDone)
    assert (error.code, error.fatal, error.request_type) == ("conversation_already_has_active_response", False, None)
    assert len(creates) == 1
    assert conv.stats.responses_deferred == 0
