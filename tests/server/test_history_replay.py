"""The replay of a conversation's history is accepted by the local server (which validates items like the API):
a spoken turn, a tool round and a text turn on one session, replayed into a fresh one."""

from typing import Any

import trio
from helpers import direct
from helpers import read_until as until
from turn_helpers import speak

from rtengine import SessionConfig
from rtengine.adapters._peer import PeerService
from rtengine.adapters._ws import open_socket
from rtengine.protocol import function_call_output, parse_server_message, response_create, session_update, user_text
from rtengine.protocol._audio import tone
from rtengine.protocol._buffer_events import input_audio_commit, item_retrieve
from rtengine.protocol._events import ProtocolWarning
from rtengine.protocol._history import History
from rtengine.protocol._payloads import encode
from rtengine.server import ServerOptions, ToolScript, open_local_server


def observe(history: History, frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        event = parse_server_message(frame)
        assert not isinstance(event, ProtocolWarning)
        history.observe(event)


async def test_a_replayed_history_is_accepted_item_by_item_by_a_new_session(peers: PeerService) -> None:
    config = SessionConfig(transcription_model="whisper-1", turn_detection="disabled")
    history = History()
    options = ServerOptions(delta_interval=0.0, tool_call=ToolScript("get_weather", '{"city": "London"}'))
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(15):
            async with open_socket(direct(server), {}) as sock:
                await until(sock, "session.created")
                await sock.send(encode(session_update(config)))
                await speak(sock, tone(440, 200))
                await sock.send(encode(input_audio_commit()))
                observe(history, await until(sock, "conversation.item.input_audio_transcription.completed"))
                await sock.send(encode(response_create()))  # the scripted tool call
                observe(history, await until(sock, "response.done"))
                call_id = history.replay().items[-1]["item"]["call_id"]
                for payload in (function_call_output(call_id, "foggy"), user_text("thanks"), response_create()):
                    history.sent(payload)
                    await sock.send(encode(payload))
                observe(history, await until(sock, "response.done"))
            replay = history.replay()
            async with open_socket(direct(server), {}) as sock:
                await until(sock, "session.created")
                for payload in replay.items:
                    await sock.send(encode(payload))
                await sock.send(encode(item_retrieve("probe")))  # a known refusal marks the end of the answers
                answers = await until(sock, "error")
    assert replay.complete
    replayed = [p["item"] for p in replay.items]
    assert [(i["type"], i.get("role")) for i in replayed] == [
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert replayed[0]["content"] == [{"type": "input_text", "text": "Tone of 440 Hz for 0.2 seconds."}]
    assert replayed[1]["arguments"] == '{"city": "London"}'
    assert replayed[4]["content"][0]["type"] == "output_text"
    assert replayed[4]["content"][0]["text"]
    errors = [a for a in answers if a["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["item_retrieve_invalid_item_id"]  # no replayed item refused
    added = [a["item"] for a in answers if a["type"] == "conversation.item.added"]
    assert [a["id"] for a in added] == [i["id"] for i in replayed]  # the server ids kept
    assert [a["type"] for a in added] == [i["type"] for i in replayed]
    assert server.record.directs()[1].types_in().count("conversation.item.create") == len(replayed)
