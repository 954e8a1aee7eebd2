"""The server refusing what a caller asked for (``update_session``, ``send_event``) and what is refused at the
caller's line: a refusal never wedges the response sequencer, never ends the call, and is not kept in ``conv.session``;
an ``update_session`` after a raw ``session.update`` reaches the server (found by the adversarial review of #13)."""

from __future__ import annotations

import math
from typing import Any

import trio
from engine_helpers import client_for, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Error, ResponseCreated, ResponseDone, SessionUpdated

SESSION = rtengine.SessionConfig(instructions="first", voice="alloy")


async def _try_update(conv: rtengine.Conversation, **changes: Any) -> BaseException | None:
    try:
        await conv.update_session(**changes)
    except Exception as exc:
        return exc
    return None


async def test_update_session_with_nan_is_refused_at_the_callers_line(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                raised = await _try_update(conv, extra={"temperature": math.nan})
                await conv.close()
    assert isinstance(raised, rtengine.ConfigError)  # as send_event refuses NaN


async def test_update_session_with_unserialisable_value_never_escapes_as_type_error(peers: PeerService) -> None:
    raised: BaseException | None = None
    escaped: BaseException | None = None
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            try:
                async with rtengine.open_conversation(client, SESSION) as conv:
                    await until(conv, SessionUpdated)
                    raised = await _try_update(conv, extra={"colour": object()})
                    await conv.send_text("still here?")
                    await conv.close()
            except Exception as exc:
                escaped = exc
    assert escaped is None, f"escaped the block: {escaped!r}"
    assert isinstance(raised, rtengine.ConfigError)


async def test_a_refused_voice_change_is_not_fatal_and_not_kept(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                await conv.send_text("hi")
                await conv.request_response()
                await until(conv, ResponseDone)
                await conv.update_session(voice="marin")  # the API refuses: assistant audio is present
                error = (await until(conv, Error))[-1]
                voice = conv.session.voice
                await conv.close()
    assert isinstance(error, Error)
    assert error.request_type == "session.update"
    assert not error.fatal, (
        "the API refused one change; the call itself is healthy (a raw send_event of it is not fatal)"
    )
    assert voice == "alloy", "conv.session (replayed on re-join/reconnect) must not claim the refused voice"


async def test_a_refused_raw_event_with_its_own_id_names_it(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                await conv.send_event({"type": "conversation.item.delete", "item_id": "nope", "event_id": "mine_1"})
                error = (await until(conv, Error))[-1]
                await conv.close()
    assert isinstance(error, Error)
    assert not error.fatal
    assert (error.request_type, error.request_event_id) == ("conversation.item.delete", "mine_1")


async def test_update_session_after_a_raw_session_update_reaches_the_server(peers: PeerService) -> None:
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                raw = {"type": "session.update", "session": {"type": "realtime", "instructions": "raw"}}
                await conv.send_event(raw)
                await until(conv, SessionUpdated)
                await conv.update_session(instructions="first")
                updated = (await until(conv, SessionUpdated))[-1]
                await conv.close()
    assert isinstance(updated, SessionUpdated)
    assert updated.instructions == "first", "update_session(instructions='first') left the server on 'raw'"


TOOL = rtengine.FunctionTool(name="lookup", description="look it up")


async def test_removing_all_tools_is_applied_or_refused_at_the_callers_line(peers: PeerService) -> None:
    session = rtengine.SessionConfig(instructions="first", tools=(TOOL,))
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(10):
            async with rtengine.open_conversation(client, session) as conv:
                await until(conv, SessionUpdated)
                raised = await _try_update(conv, tools=())
                answer = None
                if raised is None:
                    async for event in conv.events:
                        if isinstance(event, SessionUpdated | Error):
                            answer = event
                            break
                await conv.close()
    if isinstance(raised, rtengine.ConfigError):
        return  # refused where the docstring says ("checked now")
    assert raised is None
    assert isinstance(answer, SessionUpdated), f"the change was dropped after it was accepted: {answer!r}"
    assert not answer.session.get("tools")


async def test_request_response_still_works_after_a_refused_raw_response_create(peers: PeerService) -> None:
    created = False
    async with serving(peers) as server, client_for(server) as client:
        with trio.fail_after(20):
            async with rtengine.open_conversation(client, SESSION) as conv:
                await until(conv, SessionUpdated)
                await conv.send_text("hi")
                await conv.send_event({"type": "response.create", "response": {"output_modalities": ["bogus"]}})
                refusal = (await until(conv, Error))[-1]
                await conv.request_response()
                with trio.move_on_after(8):  # generous: a loopback response starts in milliseconds
                    await until(conv, ResponseCreated)
                    created = True
                await conv.close()
    assert isinstance(refusal, Error)
    assert not refusal.fatal
    assert created, "request_response() after the refused raw create never reached the server"
