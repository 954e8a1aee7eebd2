"""Changing the voice mid-session, against the local server, every event checked against the ``openai`` types.

SDK docs (``RealtimeAudioConfigOutput.voice``): "Voice cannot be changed during the session once the model has
responded with audio at least once."
"""

import trio
from helpers import direct
from marked_client import MarkedClient, started, types

from rtengine.adapters._ws import open_socket
from rtengine.protocol import user_text
from rtengine.server import LocalServer


def voice(name: str) -> dict[str, object]:
    return {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": name}}}}


async def respond(client: MarkedClient, **response: object) -> None:
    await client.send(user_text("hi"))
    await client.send({"type": "response.create", **({"response": response} if response else {})})
    await client.until("response.done")
    await client.until("rate_limits.updated")


async def test_the_voice_cannot_change_once_the_assistant_has_spoken(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            before = await client.answers(voice("cedar"))  # no audio yet: allowed
            await respond(client)
            refused = await client.answers(voice("marin"))
            same = await client.answers(voice("cedar"))  # the voice it already has: nothing changes
    assert types(before) == ["session.updated"]
    assert before[0]["session"]["audio"]["output"]["voice"] == "cedar"
    assert types(refused) == ["error"]
    assert "voice" in refused[0]["error"]["message"]
    assert refused[0]["error"]["param"] == "session.audio.output.voice"
    assert types(same) == ["session.updated"]
    assert same[0]["session"]["audio"]["output"]["voice"] == "cedar"
    assert client.problems == []


async def test_the_voice_can_change_after_text_only_answers(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await respond(client, output_modalities=["text"])
            changed = await client.answers(voice("marin"))
    assert types(changed) == ["session.updated"]
    assert changed[0]["session"]["audio"]["output"]["voice"] == "marin"
    assert client.problems == []
