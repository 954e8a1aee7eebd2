"""``conversation.item.truncate`` against the local server, every event checked against the ``openai`` types.

SDK docs (``ConversationItemTruncateEvent``): "Truncating audio will delete the server-side text transcript to
ensure there is not text in the context that hasn't been heard by the user." Past the audio's end the API answers
an ``error`` and then truncates at the real end (the recordings show it for a first truncate).
"""

import trio
from helpers import direct
from marked_client import MarkedClient, started, types

from rtengine.adapters._ws import open_socket
from rtengine.protocol import user_text
from rtengine.server import LocalServer


async def assistant_audio_item(client: MarkedClient) -> str:
    """Ask for a spoken answer; the assistant item's id (its audio is 200 ms in the fake)."""
    await client.send(user_text("hi"))
    await client.send({"type": "response.create"})
    done = (await client.until("response.done"))[-1]
    await client.until("rate_limits.updated")
    return str(done["response"]["output"][0]["id"])


async def test_truncate_with_a_negative_audio_end_is_refused(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            item = await assistant_audio_item(client)
            answer = await client.answers(
                {"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": -1}
            )
    assert types(answer) == ["error"]
    assert answer[0]["error"]["param"] == "audio_end_ms"
    assert client.problems == []


async def test_truncate_removes_what_was_not_heard(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            item = await assistant_audio_item(client)
            before = await client.answers({"type": "conversation.item.retrieve", "item_id": item})
            truncated = await client.answers(
                {"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 100}
            )
            retrieved = await client.answers({"type": "conversation.item.retrieve", "item_id": item})
    whole = before[0]["item"]["content"][0]
    assert whole["transcript"]  # there was a transcript, and 200 ms of audio
    assert len(whole["audio"]) * 3 // 4 == 200 * 48
    assert types(truncated) == ["conversation.item.truncated"]
    part = retrieved[0]["item"]["content"][0]
    assert part.get("transcript") in (None, "")
    assert len(part.get("audio") or "") * 3 // 4 == 100 * 48  # 100 ms of 24 kHz PCM16 is left
    assert client.problems == []


async def test_a_second_truncate_past_the_first_is_clamped_to_the_first(server: LocalServer) -> None:
    """After a truncate at 100 ms the item holds 100 ms of audio; truncating it at 150 ms is past its end."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            item = await assistant_audio_item(client)
            cut = {"type": "conversation.item.truncate", "item_id": item, "content_index": 0}
            await client.answers({**cut, "audio_end_ms": 100})
            again = await client.answers({**cut, "audio_end_ms": 150})
    assert types(again) == ["error", "conversation.item.truncated"]
    assert "100ms" in again[0]["error"]["message"]
    assert again[1]["audio_end_ms"] == 100
    assert client.problems == []


async def test_truncate_of_a_content_part_the_item_does_not_have_is_refused(server: LocalServer) -> None:
    """SDK (``content_index``): "The index of the content part to truncate. Set this to 0." An assistant audio item
    has one part; any other index is an error, and nothing is cut."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            item = await assistant_audio_item(client)
            answers = [
                await client.answers(
                    {"type": "conversation.item.truncate", "item_id": item, "content_index": index, "audio_end_ms": 50}
                )
                for index in (3, -1)
            ]
            cut = await client.answers(
                {"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 150}
            )
    assert [types(answer) for answer in answers] == [["error"], ["error"]]
    assert {answer[0]["error"]["param"] for answer in answers} == {"content_index"}
    assert types(cut) == ["conversation.item.truncated"]
    assert cut[0]["audio_end_ms"] == 150  # the refused truncates cut nothing
    assert client.problems == []
