"""``conversation.item.create`` with ``previous_item_id`` and item content the API refuses, against the local
server, every event checked against the ``openai`` package's types.

SDK docs (``ConversationItemCreateEvent.previous_item_id``): "If set to ``root``, the new item will be added to the
beginning of the conversation. If set to an existing ID, it allows an item to be inserted mid-conversation. If the
ID cannot be found, an error will be returned and the item will not be added."
"""

from typing import Any

import trio
from helpers import direct
from marked_client import MarkedClient, started, types

from rtengine.adapters._ws import open_socket
from rtengine.protocol import user_text
from rtengine.server import LocalServer


async def item_id(client: MarkedClient, text: str, **extra: Any) -> str:
    await client.send({**user_text(text), **extra})
    return str((await client.until("conversation.item.done"))[-1]["item"]["id"])


async def test_an_item_after_an_unknown_previous_item_is_refused(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            first = await item_id(client, "first")
            answer = await client.answers({**user_text("orphan"), "previous_item_id": "item_does_not_exist"})
            await client.send(user_text("after"))
            after = (await client.until("conversation.item.done"))[-1]
    assert types(answer) == ["error"]
    assert answer[0]["error"]["param"] == "previous_item_id"
    assert "item_does_not_exist" in answer[0]["error"]["message"]
    assert after["previous_item_id"] == first  # the orphan was not added
    assert client.problems == []


async def test_previous_item_id_places_the_item(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            first = await item_id(client, "first")
            second = await item_id(client, "second")
            at_root = (await client.answers({**user_text("at the root"), "previous_item_id": "root"}))[0]
            after_first = (await client.answers({**user_text("after first"), "previous_item_id": first}))[0]
            await client.send(user_text("last"))
            last = (await client.until("conversation.item.done"))[-1]
            after_last = (await client.answers({**user_text("after last"), "previous_item_id": last["item"]["id"]}))[0]
            await client.send(user_text("appended"))
            appended = (await client.until("conversation.item.added"))[-1]
    assert at_root["previous_item_id"] is None
    assert after_first["previous_item_id"] == first
    assert last["previous_item_id"] == second  # "after first" and "at the root" are not at the end
    assert after_last["previous_item_id"] == last["item"]["id"]  # inserted after the last: now the end
    assert appended["previous_item_id"] == after_last["item"]["id"]
    assert client.problems == []


async def test_a_non_string_previous_item_id_is_refused(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            answer = await client.answers({**user_text("typed"), "previous_item_id": 7})
    assert types(answer) == ["error"]
    assert answer[0]["error"]["code"] == "invalid_type"
    assert answer[0]["error"]["param"] == "previous_item_id"


async def test_an_input_audio_part_that_is_not_base64_is_refused(server: LocalServer) -> None:
    """``input_audio_buffer.append`` with the same text is refused ("'audio' is not valid base64"); so is an
    item's audio part."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": "@@@ not base64"}]}
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            answer = await client.answers({"type": "conversation.item.create", "item": item})
            good = {**item, "content": [{"type": "input_audio", "audio": "AAAA"}]}
            accepted = await client.answers({"type": "conversation.item.create", "item": good})
    assert types(answer) == ["error"]
    assert answer[0]["error"]["param"] == "item.content[0].audio"
    assert types(accepted) == ["conversation.item.added", "conversation.item.done"]
    assert client.problems == []
