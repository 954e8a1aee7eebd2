"""``conversation.item.delete`` and ``conversation.item.retrieve`` against the local server: the real replies, the
real errors for unknown ids (``item_delete_invalid_item_id``, as the API words it), strict against the SDK."""

import base64

import trio
from helpers import direct
from helpers import read_until as until
from turn_helpers import speak

from rtengine import SessionConfig
from rtengine.adapters._ws import open_socket
from rtengine.protocol import response_create, session_update, user_text
from rtengine.protocol._audio import tone
from rtengine.protocol._buffer_events import input_audio_commit, item_delete, item_retrieve
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer


async def test_delete_removes_an_item_and_refuses_an_unknown_one(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await until(sock, "session.created")
            await sock.send(encode(user_text("first")))
            first = (await until(sock, "conversation.item.done"))[-1]["item"]["id"]
            await sock.send(encode(user_text("second")))
            second = (await until(sock, "conversation.item.done"))[-1]["item"]["id"]
            await sock.send(encode(item_delete(second)))
            deleted = await until(sock, "conversation.item.deleted")
            await sock.send(encode(user_text("third")))
            third = (await until(sock, "conversation.item.added"))[-1]
            await sock.send(encode({**item_delete(second), "event_id": "del_2"}))
            again = (await until(sock, "error"))[-1]
            await sock.send(encode(item_retrieve(second)))
            gone = (await until(sock, "error"))[-1]
    assert [e["type"] for e in deleted] == ["conversation.item.deleted"]
    assert deleted[0]["item_id"] == second
    assert third["previous_item_id"] == first  # the deleted item is no longer in the chain
    assert again["error"] == {
        "type": "invalid_request_error",
        "code": "item_delete_invalid_item_id",
        "message": f"Error deleting item: the item with id '{second}' does not exist.",
        "param": None,
        "event_id": "del_2",
    }
    assert gone["error"]["code"] == "item_retrieve_invalid_item_id"


async def test_retrieve_returns_the_item_and_the_user_audio(server: LocalServer) -> None:
    audio = tone(440, 200)
    config = SessionConfig(transcription_model="whisper-1", turn_detection="disabled")
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await until(sock, "session.created")
            await sock.send(encode(session_update(config)))
            await speak(sock, audio)
            await sock.send(encode(input_audio_commit()))
            item_id = (await until(sock, "conversation.item.input_audio_transcription.completed"))[-1]["item_id"]
            await sock.send(encode(item_retrieve(item_id)))
            retrieved = (await until(sock, "conversation.item.retrieved"))[-1]
            await sock.send(encode(response_create()))
            answering = await until(sock, "response.done")
            answer = answering[-1]["response"]["output"][0]
            await sock.send(encode(item_retrieve(answer["id"])))
            assistant = (await until(sock, "conversation.item.retrieved"))[-1]
    item = retrieved["item"]
    assert (item["id"], item["object"], item["role"], item["status"]) == (item_id, "realtime.item", "user", "completed")
    part = item["content"][0]
    assert part["type"] == "input_audio"
    assert base64.b64decode(part["audio"]) == audio  # the audio as the server holds it
    assert part["transcript"] == "Tone of 440 Hz for 0.2 seconds."
    assert assistant["item"]["id"] == answer["id"]
    streamed = b"".join(base64.b64decode(e["delta"]) for e in answering if e["type"] == "response.output_audio.delta")
    assert len(streamed) == 48 * 200  # the server's 200 ms answer
    assert assistant["item"]["content"] == [
        {**answer["content"][0], "audio": base64.b64encode(streamed).decode("ascii")}
    ]


async def test_retrieve_of_an_unknown_item_is_an_error_to_the_asker(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            await until(sock, "session.created")
            await sock.send(encode({**item_retrieve("item_nope"), "event_id": "ask_1"}))
            error = (await until(sock, "error"))[-1]["error"]
    assert error["code"] == "item_retrieve_invalid_item_id"
    assert error["message"] == "Error retrieving item: the item with id 'item_nope' does not exist."
    assert error["event_id"] == "ask_1"
