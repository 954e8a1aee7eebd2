"""``response.create`` and ``response.cancel`` as the API answers them (findings of the review of #10).

The request of ``response.create`` is validated like a ``session.update`` (the SDK's
``RealtimeResponseCreateParams``); every ``response.done`` follows its ``response.created``; ``response.cancel``
naming another response leaves the active one alone; an out-of-band response (``conversation: "none"``) answers
its own ``input`` and stays out of the conversation. Every event read is checked against the ``openai`` SDK's
types in the test body (and by the suite-wide fixture).
"""

from typing import Any

import pytest
import trio
from helpers import direct
from hypothesis import given, settings
from hypothesis import strategies as st
from marked_client import started, types

from rtengine.adapters._ws import open_socket
from rtengine.adapters._ws_frames import text_frame
from rtengine.protocol import user_text
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer
from rtengine.server._validate_requests import check_response

# --- the response object of response.create ----------------------------------------------------------------------


async def test_response_create_with_non_string_metadata_is_refused(server: LocalServer) -> None:
    """Metadata is "key-value pairs" of strings (the SDK's ``Metadata`` is ``Dict[str, str]``): a number is refused
    rather than echoed in a response the SDK cannot parse; nothing starts."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send(user_text("hi"))
            await client.until("conversation.item.done")
            request = {"type": "response.create", "event_id": "evt_meta", "response": {"metadata": {"turn": 1}}}
            answer = await client.answers(request)
            fixed = await client.answers({"type": "response.create", "response": {"metadata": {"turn": "1"}}})
            done = (await client.until("response.done"))[-1]
    assert types(answer) == ["error"]
    error = answer[0]["error"]
    assert (error["code"], error["param"], error["event_id"]) == ("invalid_type", "response.metadata.turn", "evt_meta")
    assert types(fixed)[:1] == ["response.created"]
    assert done["response"]["metadata"] == {"turn": "1"}
    assert client.problems == []


async def test_a_response_create_is_answered_before_the_next_event_in_the_same_read(server: LocalServer) -> None:
    """``response.create`` and the next client event arrive in one TCP segment (a fast client): the server's
    ``response.created`` still comes before its answer to that next event, as the API handles events in order."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send(user_text("hi"))
            await client.until("conversation.item.done")
            both = text_frame(encode({"type": "response.create"})) + text_frame(
                encode({"type": "conversation.item.retrieve", "item_id": "item_none", "event_id": "evt_next"})
            )
            await sock._stream.send_all(both)  # one write: the server reads both frames at once
            seen = await client.until("error")
    assert types(seen)[0] == "response.created"
    assert seen[-1]["error"]["event_id"] == "evt_next"


@pytest.mark.parametrize(
    ("response", "code", "param"),
    [
        ({"bogus": 1}, "unknown_parameter", "response.bogus"),
        ({"instructions": 123}, "invalid_type", "response.instructions"),
        ({"max_output_tokens": 0}, "integer_below_min_value", "response.max_output_tokens"),
        ({"max_output_tokens": 4097}, "integer_above_max_value", "response.max_output_tokens"),
        ({"output_modalities": ["text", "audio"]}, "invalid_value", "response.output_modalities"),
        ({"output_modalities": ["video"]}, "invalid_value", "response.output_modalities[0]"),
        ("not an object", "invalid_type", "response"),
        ({"metadata": {f"key{i}": "v" for i in range(17)}}, "object_above_max_properties", "response.metadata"),
        ({"metadata": {"key": "v" * 513}}, "string_above_max_length", "response.metadata.key"),
        ({"conversation": 5}, "invalid_type", "response.conversation"),
        ({"input": "hello"}, "invalid_type", "response.input"),
    ],
)
async def test_response_create_with_an_invalid_response_object_is_refused(
    server: LocalServer, response: object, code: str, param: str
) -> None:
    """The same field checks as ``session.update`` (``unknown_parameter``, ``invalid_type``, ranges, "'text' and
    'audio' cannot be requested together"); the refused request starts no response."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            answer = await client.answers({"type": "response.create", "response": response})
    assert types(answer) == ["error"]
    assert (answer[0]["error"]["code"], answer[0]["error"]["param"]) == (code, param)
    assert answer[0]["error"]["type"] == "invalid_request_error"
    assert client.problems == []


async def test_a_full_valid_response_object_is_accepted(server: LocalServer) -> None:
    """What the agents SDK and the docs send per response: 16 metadata pairs of 512 characters are within bounds."""
    request = {
        "instructions": "Be brief.",
        "max_output_tokens": 4096,
        "output_modalities": ["text"],
        "metadata": {f"key{i}": "v" * 512 for i in range(16)},
        "tool_choice": "auto",
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}],
        "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}},
        "conversation": "auto",
    }
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send({"type": "response.create", "response": request})
            done = (await client.until("response.done"))[-1]["response"]
    assert done["status"] == "completed"
    assert done["max_output_tokens"] == 4096
    assert done["metadata"] == request["metadata"]
    assert client.problems == []


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(["metadata", "max_output_tokens", "output_modalities", "input", "conversation", "tools"])


@settings(max_examples=300, deadline=None)
@given(response=st.one_of(_json, st.dictionaries(_keys, _json, max_size=4)))
def test_check_response_answers_any_json_with_a_problem_or_none(response: Any) -> None:
    problem = check_response(response)
    if problem is None:
        assert isinstance(response, dict)
        metadata = response.get("metadata") or {}
        assert all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    else:
        assert problem.code
        assert problem.param is not None
        assert problem.param.startswith("response")


# --- response.cancel ---------------------------------------------------------------------------------------------


async def test_every_response_done_follows_its_response_created(server: LocalServer) -> None:
    """A ``response.cancel`` right behind ``response.create`` cancels a response the client has not seen yet: it is
    still announced (``response.created``) before its ``response.done`` ``cancelled``."""
    with trio.fail_after(20):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send(user_text("hi"))
            await client.until("conversation.item.done")
            for _ in range(5):
                await client.send({"type": "response.create"})
                await client.send({"type": "response.cancel"})
                await client.until("response.done")
                await client.until("rate_limits.updated")
    created = [e["response"]["id"] for e in client.events if e["type"] == "response.created"]
    done = [e["response"]["id"] for e in client.events if e["type"] == "response.done"]
    assert len(done) == 5
    assert done == created
    assert all(e["response"]["status"] == "cancelled" for e in client.events if e["type"] == "response.done")
    assert client.problems == []


async def test_cancelling_another_response_id_leaves_the_active_one_alone(server: LocalServer) -> None:
    """SDK docs (``ResponseCancelEvent.response_id``): "A specific response ID to cancel - if not provided, will
    cancel an in-progress response in the default conversation." Another id names no active response: the error,
    and the active response completes; its own id cancels it."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send(user_text("hi"))
            await client.send({"type": "response.create"})
            await client.until("response.created")
            await client.send({"type": "response.cancel", "response_id": "resp_not_this_one", "event_id": "evt_c"})
            streamed = await client.until("response.done")
            await client.until("rate_limits.updated")
            await client.send({"type": "response.create"})
            rid = (await client.until("response.created"))[-1]["response"]["id"]
            await client.send({"type": "response.cancel", "response_id": rid})
            cancelled = (await client.until("response.done"))[-1]["response"]
    assert streamed[-1]["response"]["status"] == "completed"
    (error,) = [e["error"] for e in streamed if e["type"] == "error"]
    assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "evt_c")
    assert (cancelled["id"], cancelled["status"]) == (rid, "cancelled")
    assert client.problems == []


# --- out-of-band responses ---------------------------------------------------------------------------------------


async def test_an_out_of_band_response_stays_out_of_the_conversation(server: LocalServer) -> None:
    """SDK docs (``RealtimeResponse.conversation_id``): "If ``none``, the response will not be added to any
    conversation and the value of ``conversation_id`` will be ``null``"; ``input`` is the response's context
    instead of the default conversation (the fake model answers it)."""
    oob = {
        "conversation": "none",
        "output_modalities": ["text"],
        "metadata": {"purpose": "classify"},
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "out of band"}]}],
    }
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send(user_text("in the conversation"))
            last = (await client.until("conversation.item.done"))[-1]["item"]["id"]
            await client.send({"type": "response.create", "response": oob})
            streamed = await client.until("response.done")
            await client.until("rate_limits.updated")
            done = streamed[-1]["response"]
            (output,) = done["output"]
            after = await client.answers({"type": "conversation.item.retrieve", "item_id": output["id"]})
            # The conversation goes on from its own last item, and answers its own last user text.
            await client.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
            normal = await client.until("response.done")
    assert "conversation.item.added" not in types(streamed)
    assert "conversation.item.done" not in types(streamed)
    assert done["conversation_id"] is None
    assert done["metadata"] == {"purpose": "classify"}
    assert output["content"][0]["text"] == "You said: out of band"
    assert types(after) == ["error"]  # the output item is in no conversation
    assert after[0]["error"]["code"] == "item_retrieve_invalid_item_id"
    (added,) = [e for e in normal if e["type"] == "conversation.item.added"]
    assert added["previous_item_id"] == last
    assert normal[-1]["response"]["conversation_id"] is not None
    assert normal[-1]["response"]["output"][0]["content"][0]["text"] == "You said: in the conversation"
    assert client.problems == []


async def test_an_out_of_band_audio_answer_cannot_be_truncated(server: LocalServer) -> None:
    """Truncation cuts a conversation item's audio; an out-of-band answer is in no conversation."""
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send({"type": "response.create", "response": {"conversation": "none", "input": []}})
            done = (await client.until("response.done"))[-1]["response"]
            await client.until("rate_limits.updated")
            item = done["output"][0]["id"]
            cut = {"type": "conversation.item.truncate", "item_id": item, "content_index": 0, "audio_end_ms": 50}
            answer = await client.answers(cut)
    assert done["output"][0]["content"][0]["type"] == "output_audio"
    assert types(answer) == ["error"]
    assert client.problems == []


async def test_the_input_items_of_a_response_are_validated_like_created_items(server: LocalServer) -> None:
    """SDK (``RealtimeResponseCreateParams.input``: ``List[ConversationItem]``): an item the API refuses in
    ``conversation.item.create`` is refused in ``response.input`` too (its ``param`` under ``response.input[i]``), and
    an ``item_reference`` must name an item of the conversation."""
    bad_part = {"type": "message", "role": "user", "content": [{"type": "output_text", "text": "x"}]}
    refused_items = [{"type": "bogus"}, bad_part, {"type": "item_reference", "id": "item_none"}]
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            client = await started(sock)
            await client.send(user_text("known"))
            known = (await client.until("conversation.item.done"))[-1]["item"]["id"]
            refused = []
            for item in refused_items:
                request = {"conversation": "none", "input": [user_text("ok")["item"], item]}
                refused.append(await client.answers({"type": "response.create", "response": request}))
            reference = {"type": "item_reference", "id": known}
            await client.send({"type": "response.create", "response": {"conversation": "none", "input": [reference]}})
            accepted = await client.until("response.done")
    assert [types(answer) for answer in refused] == [["error"]] * 3
    assert [answer[0]["error"]["param"] for answer in refused] == [
        "response.input[1].type",
        "response.input[1].content[0].type",
        "response.input[1].id",
    ]
    assert accepted[-1]["response"]["status"] == "completed"
    assert client.problems == []
